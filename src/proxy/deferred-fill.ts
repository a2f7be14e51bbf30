/** A fill that ranges started begins once the blob's ranges have paused this long, */
const QUIET_MS = 1_000;
/** or this long after the first of them, whichever comes first. */
const LONGEST_WAIT_MS = 10_000;

interface Pending {
  quiet: NodeJS.Timeout;
  longest: NodeJS.Timeout;
}

/**
 * The fills that ranges of a blob start (proxy.fillonrange), each begun once the ranges pause: a
 * container reading its files is served first, its link not shared with the rest of the blob
 * (docs/design/lazy-pulls.md). Each key is started once per wait, and never after close.
 */
export class DeferredFills {
  private readonly pending = new Map<string, Pending>();

  constructor(
    /** Told when a fill is scheduled (+1) and when it starts or is dropped (-1). */
    private readonly scheduled: (delta: 1 | -1) => void,
  ) {}

  /** A range of `key` was asked for: `start` runs once its ranges pause. */
  touch(key: string, start: () => void): void {
    const waiting = this.pending.get(key);
    const begin = () => {
      // Started before it is dropped: a fill due, then running, is in flight all along.
      start();
      this.drop(key);
    };
    if (waiting) {
      clearTimeout(waiting.quiet);
      waiting.quiet = setTimeout(begin, QUIET_MS).unref();
      return;
    }
    this.scheduled(1);
    this.pending.set(key, { quiet: setTimeout(begin, QUIET_MS).unref(), longest: setTimeout(begin, LONGEST_WAIT_MS).unref() });
  }

  close(): void {
    for (const key of [...this.pending.keys()]) this.drop(key);
  }

  private drop(key: string): void {
    const waiting = this.pending.get(key);
    if (!waiting) return;
    clearTimeout(waiting.quiet);
    clearTimeout(waiting.longest);
    this.pending.delete(key);
    this.scheduled(-1);
  }
}
