import type { Digest } from "../registry/digest.js";
import type { CacheTrust, WriteBarrier, WriteStart } from "../registry/write-barrier.js";
import type { StorageDriver } from "../storage/driver.js";
import { systemClock, type Clock } from "./clock.js";
import { CollectionGuard, type GuardTiming } from "./collection-guard.js";
import { FENCE_TIMING, RemovalFence, RemovalWatch, type FenceTiming } from "./removal-fence.js";
import { refuseDuringSweep } from "./sweep-guard.js";

export interface BarrierOptions {
  /** The fence's and the guard's timing; tests shorten them. */
  fence?: FenceTiming;
  guard?: GuardTiming;
  /** Shared by the fence, the guard and a collector using this barrier. */
  clock?: Clock;
  /** Where the fence reports a removal that outlasted its heartbeat. */
  warn?: (message: string) => void;
}

/**
 * The write barrier of a store that collections may sweep while registries serve it: the removal
 * fence (caches, removals), the collection guard (writes that start using blobs) and the legacy
 * sweep marker, as the domain sees them. One per process and store; the collector of this
 * process uses the same one. The argument: docs/design/gc-safety.md.
 */
export class CollectionBarrier implements WriteBarrier {
  readonly fence: RemovalFence;
  readonly guard: CollectionGuard;
  readonly clock: Clock;
  readonly caches: CacheTrust;
  private readonly watch: RemovalWatch;
  private readonly removalListeners: Array<() => void> = [];

  constructor(
    private readonly driver: StorageDriver,
    options: BarrierOptions = {},
  ) {
    const timing = options.fence ?? FENCE_TIMING;
    this.clock = options.clock ?? systemClock;
    const watch = new RemovalWatch(driver, () => this.removalListeners.forEach((clear) => clear()), timing, this.clock);
    this.watch = watch;
    this.fence = new RemovalFence(driver, timing, options.warn, this.clock);
    this.guard = new CollectionGuard(driver, watch, timing, options.guard, this.clock);
    this.caches = {
      trusted: () => watch.trusted(),
      snapshot: () => watch.snapshot(),
      holds: (snapshot) => watch.holds(snapshot),
      onRemoval: (clear) => void this.removalListeners.push(clear),
    };
    watch.start();
  }

  begin(): WriteStart {
    return this.guard.ticket();
  }

  admit(): Promise<void> {
    return refuseDuringSweep(this.driver);
  }

  secure(start: WriteStart, digests: Digest[]): Promise<Digest[]> {
    return this.guard.used(start, digests);
  }

  moving<T>(digest: Digest, move: () => Promise<T>): Promise<T> {
    return this.guard.moving(digest, move);
  }

  removing<T>(removal: () => Promise<T>): Promise<T> {
    return this.fence.remove(removal);
  }

  close(): Promise<void> {
    this.watch.stop();
    return this.fence.settled();
  }
}
