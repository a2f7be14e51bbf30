import type { Digest } from "./digest.js";

/**
 * What the stores ask of whatever may remove content from under them: a garbage collector, in
 * this process or in another one sharing the store. The domain knows nothing more of it; the
 * protocol is in gc/ (gc/barrier.ts), and its argument in docs/design/gc-safety.md.
 */
export interface WriteBarrier {
  /** Taken before a write that starts using blobs: a manifest put, a mount, a HEAD after which a client skips an upload. */
  begin(): WriteStart;
  /** Refuses, retryably, a write that would make content referenced again while a collector that forbids it runs. */
  admit(): Promise<void>;
  /** After such a write: nothing removes these blobs from now on. Answers those already gone (the write must not be acknowledged for them). */
  secure(start: WriteStart, digests: Digest[]): Promise<Digest[]>;
  /** Runs `move` (data moving into place as the blob); fails, retryably, when the blob was removed under it. */
  moving<T>(digest: Digest, move: () => Promise<T>): Promise<T>;
  /** Runs a removal of blob data or of a repository's link once every cache sharing the store has been told. */
  removing<T>(removal: () => Promise<T>): Promise<T>;
  /** When a cache of what the store holds may answer for it: nothing was removed since it was read. */
  readonly caches: CacheTrust;
  /** Stops its background work; resolves once it writes nothing more to the store. */
  close(): Promise<void>;
}

/** Opaque to the domain: what `begin` took, handed back to `secure`. */
export interface WriteStart {
  readonly taken: number | undefined;
}

export interface CacheTrust {
  /** Whether cached entries may be used now. */
  trusted(): boolean;
  /** Taken before a store read whose result may be cached; undefined when it may not. */
  snapshot(): string | undefined;
  /** Whether a result read since `snapshot` may be cached now. */
  holds(snapshot: string | undefined): boolean;
  /** `clear` is called whenever something was removed: everything cached so far must go. */
  onRemoval(clear: () => void): void;
}

/**
 * A store nothing else removes from (no collector, no other instance): every write stands as it
 * is, every removal is this process's own (and forgets its cache entries itself). No I/O.
 */
export const unguarded: WriteBarrier = {
  begin: () => ({ taken: undefined }),
  admit: () => Promise.resolve(),
  secure: () => Promise.resolve([]),
  moving: (_digest, move) => move(),
  removing: (removal) => removal(),
  caches: { trusted: () => true, snapshot: () => "", holds: (snapshot) => snapshot !== undefined, onRemoval: () => undefined },
  close: () => Promise.resolve(),
};
