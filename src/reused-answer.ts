/**
 * An asking function whose answer is reused for `freshMs`: health checks and scrapes at any
 * rate then cost what they ask (a store, a peer) one question per period.
 */
export function reusedFor<T>(freshMs: number, ask: () => Promise<T>): () => Promise<T> {
  let last: { at: number; answer: Promise<T> } | undefined;
  return () => {
    if (!last || Date.now() - last.at >= freshMs) last = { at: Date.now(), answer: ask() };
    return last.answer;
  };
}
