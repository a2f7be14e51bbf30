import { LRUCache } from "lru-cache";
import type { StorageDriver } from "../storage/driver.js";
import { FENCE_TIMING, RemovalWatch, systemClock, type Clock, type FenceTiming } from "./removal-fence.js";

/**
 * storage.cache.blobdescriptor (layerinfo): blob sizes by digest, and which repositories link
 * which blobs, so repeated HEADs and GETs skip the store. Unlike distribution's, it never
 * vouches for what was removed since it was read, by this instance or any other, a collector or
 * a DELETE: its entries count only while the removal fence says nothing was removed meanwhile.
 */
export class DescriptorCache {
  private readonly entries: LRUCache<string, number>;
  private readonly watch: RemovalWatch;

  constructor(driver: StorageDriver, max: number, timing: FenceTiming = FENCE_TIMING, clock: Clock = systemClock) {
    this.entries = new LRUCache({ max });
    this.watch = new RemovalWatch(driver, () => this.entries.clear(), timing, clock);
    this.watch.start();
  }

  /** The size the cache vouches for, if it may vouch for anything now. */
  get(key: string): number | undefined {
    return this.watch.trusted() ? this.entries.get(key) : undefined;
  }

  /** Taken before the store read whose result is then given to `remember`. */
  snapshot(): string | undefined {
    return this.watch.snapshot();
  }

  /** Keeps a size the store answered, unless a removal may have come between. */
  remember(key: string, size: number, snapshot: string | undefined): void {
    if (this.watch.holds(snapshot)) this.entries.set(key, size);
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  close(): void {
    this.watch.stop();
  }
}
