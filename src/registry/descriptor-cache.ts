import { LRUCache } from "lru-cache";
import type { CacheTrust } from "./write-barrier.js";

/**
 * storage.cache.blobdescriptor (layerinfo): blob sizes by digest, and which repositories link
 * which blobs, so repeated HEADs and GETs skip the store. Unlike distribution's, it never
 * answers for what was removed since it was read, by this instance or any other, a collector or
 * a DELETE: its entries count only while the store's write barrier says nothing was removed meanwhile.
 */
export class DescriptorCache {
  private readonly entries: LRUCache<string, number>;

  constructor(
    max: number,
    private readonly watch: CacheTrust,
  ) {
    this.entries = new LRUCache({ max });
    watch.onRemoval(() => this.clear());
  }

  /** Everything cached so far goes (the removal epoch changed). */
  clear(): void {
    this.entries.clear();
  }

  /** The size the cache holds, if it may answer now. */
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

}
