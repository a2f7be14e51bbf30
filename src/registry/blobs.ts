import type { Readable } from "node:stream";
import { LRUCache } from "lru-cache";
import { deleteIfPresent, isPathNotFound, unlessMissing, type StorageDriver } from "../storage/driver.js";
import { layout } from "./layout.js";
import { DescriptorCache } from "./descriptor-cache.js";
import { parseDigest, type Digest } from "./digest.js";
import { RegistryError } from "./errors.js";
import type { RepositoryName } from "./names.js";
import { unguarded, type WriteBarrier } from "./write-barrier.js";

export interface BlobDescriptor {
  digest: Digest;
  size: number;
}

/** Reads a distribution link file: the digest it holds, or undefined when absent or garbled. */
export async function readLink(driver: StorageDriver, path: string): Promise<Digest | undefined> {
  const content = await unlessMissing(() => driver.getContent(path));
  if (content === undefined) return undefined;
  const parsed = parseDigest(content.toString("utf8").trim());
  return parsed.ok ? parsed.digest : undefined;
}

export function writeLink(driver: StorageDriver, path: string, digest: Digest): Promise<void> {
  return driver.putContent(path, Buffer.from(digest));
}

/** A HEAD renews a repository's link to a blob older than this, so a collection's delay counts from the HEAD. */
const LINK_RENEWAL_MS = 1000;

export interface BlobStoreOptions {
  /** storage.cache.blobdescriptor: entries of the in-memory descriptor cache; none without. */
  cacheEntries?: number;
  /** Answer blob GETs with a redirect to the store when the driver can presign URLs. */
  redirect?: boolean;
  /** What keeps writes and removals safe from a collection running beside them; none without one. */
  barrier?: WriteBarrier;
}

function blobUnknown(digest: Digest): RegistryError {
  return new RegistryError("BLOB_UNKNOWN", `the data of blob ${digest} is not in the store`, { digest });
}

/**
 * The global, content-addressed blob data shared by all repositories. `stat` may answer from
 * the descriptor cache (reads); `statInStore` always asks the store (what a push relies on).
 */
export class BlobStore {
  readonly cache: DescriptorCache | undefined;
  /** Every write that starts using blobs, and every removal of blob data or links, goes through it. */
  readonly barrier: WriteBarrier;
  /**
   * When each repository link (name@digest) was last written, as this instance knows it (wall
   * clock): the blobs of recent pushes. A miss costs one stat of the link; 1,000 keeps the memory
   * flat within minutes of load (see MANIFEST_CACHE).
   */
  readonly linkTimes = new LRUCache<string, number>({ max: 1000 });

  constructor(
    private readonly driver: StorageDriver,
    private readonly options: BlobStoreOptions = {},
  ) {
    this.barrier = options.barrier ?? unguarded;
    this.cache = options.cacheEntries ? new DescriptorCache(options.cacheEntries, this.barrier.caches) : undefined;
  }

  async stat(digest: Digest): Promise<BlobDescriptor | undefined> {
    const cached = this.cache?.get(digest);
    if (cached !== undefined) return { digest, size: cached };
    return this.statInStore(digest);
  }

  async statInStore(digest: Digest): Promise<BlobDescriptor | undefined> {
    const snapshot = this.cache?.snapshot();
    const info = await unlessMissing(() => this.driver.stat(layout.blobData(digest)));
    if (!info || info.isDir) return undefined;
    this.cache?.remember(digest, info.size, snapshot);
    return { digest, size: info.size };
  }

  /** A URL the client may fetch the blob from directly, when redirects are on and possible. */
  redirectURL(digest: Digest): Promise<string | undefined> {
    if (!this.options.redirect || !this.driver.redirectURL) return Promise.resolve(undefined);
    return this.driver.redirectURL(layout.blobData(digest));
  }

  /** The blob's bytes; BLOB_UNKNOWN (and the cache forgets it) when its data is gone. */
  async open(digest: Digest, offset?: number, end?: number): Promise<Readable> {
    try {
      return await this.driver.reader(layout.blobData(digest), offset, end);
    } catch (err) {
      if (!isPathNotFound(err)) throw err;
      this.cache?.forget(digest);
      throw blobUnknown(digest);
    }
  }

  getContent(digest: Digest): Promise<Buffer | undefined> {
    return unlessMissing(() => this.driver.getContent(layout.blobData(digest)));
  }

  /** Stores small content (a manifest) under its digest. */
  async putContent(digest: Digest, content: Buffer): Promise<void> {
    await this.driver.putContent(layout.blobData(digest), content);
  }

  /**
   * Deletes the blob's data (garbage collection) once every cache sharing the store knows, if
   * `allowed` still says so then; answers whether it did.
   */
  remove(digest: Digest, allowed: () => boolean): Promise<boolean> {
    this.cache?.forget(digest);
    return this.barrier.removing(async () => {
      if (!allowed()) return false;
      await this.driver.deleteObjects([layout.blobData(digest)]);
      await this.driver.removeEmptyDir?.(layout.blobDir(digest));
      return true;
    });
  }

  close(): Promise<void> {
    return this.barrier.close();
  }
}

/**
 * The blobs one repository may use: distribution's linked blob store. A blob belongs to a
 * repository when `_layers/<alg>/<hex>/link` exists there; the data itself is global.
 */
export class RepositoryBlobs {
  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
    readonly name: RepositoryName,
  ) {}

  private cacheKey(digest: Digest): string {
    return `${this.name}@${digest}`;
  }

  /** The linked blob's size, from the cache when the cache may answer. */
  async stat(digest: Digest): Promise<BlobDescriptor | undefined> {
    const cached = this.blobs.cache?.get(this.cacheKey(digest));
    if (cached !== undefined) return { digest, size: cached };
    return this.lookUp(digest, (d) => this.blobs.stat(d));
  }

  /** The linked blob's size as the store says now: link and data both present. */
  statInStore(digest: Digest): Promise<BlobDescriptor | undefined> {
    return this.lookUp(digest, (d) => this.blobs.statInStore(d));
  }

  /**
   * The linked blob's size for a HEAD, after which a client skips its upload: from then on no
   * collection deletes it (the link is renewed when older than a second, so a collection starting
   * later sees it young; one deciding now is told).
   */
  async statKept(digest: Digest): Promise<BlobDescriptor | undefined> {
    const start = this.blobs.barrier.begin();
    const blob = await this.stat(digest);
    if (!blob) return undefined;
    const key = this.cacheKey(digest);
    const written = this.blobs.linkTimes.get(key) ?? (await unlessMissing(() => this.driver.stat(layout.layerLink(this.name, digest))))?.modTime.getTime();
    if (written === undefined || Date.now() - written > LINK_RENEWAL_MS) await this.link(digest);
    return (await this.blobs.barrier.secure(start, [digest])).length === 0 ? blob : undefined;
  }

  private async lookUp(digest: Digest, data: (digest: Digest) => Promise<BlobDescriptor | undefined>): Promise<BlobDescriptor | undefined> {
    const cache = this.blobs.cache;
    const snapshot = cache?.snapshot();
    const link = await unlessMissing(() => this.driver.stat(layout.layerLink(this.name, digest)));
    if (!link) return undefined;
    this.blobs.linkTimes.set(this.cacheKey(digest), link.modTime.getTime());
    const blob = await data(digest);
    if (blob) cache?.remember(this.cacheKey(digest), blob.size, snapshot);
    return blob;
  }

  redirectURL(digest: Digest): Promise<string | undefined> {
    return this.blobs.redirectURL(digest);
  }

  async open(digest: Digest, offset?: number, end?: number): Promise<Readable> {
    try {
      return await this.blobs.open(digest, offset, end);
    } catch (err) {
      if (err instanceof RegistryError && err.code === "BLOB_UNKNOWN") this.blobs.cache?.forget(this.cacheKey(digest));
      throw err;
    }
  }

  async link(digest: Digest): Promise<void> {
    await writeLink(this.driver, layout.layerLink(this.name, digest), digest);
    this.blobs.linkTimes.set(this.cacheKey(digest), Date.now());
  }

  /**
   * Links a blob that `source` holds (a cross-repository mount), so that no collection deletes
   * it from then on; undefined when it cannot (not there, or a collection removed it meanwhile).
   */
  async mount(source: RepositoryBlobs, digest: Digest): Promise<BlobDescriptor | undefined> {
    const start = this.blobs.barrier.begin();
    await this.blobs.barrier.admit();
    // The store, not the cache: a mount acknowledged for a removed blob would be a lie.
    const blob = await source.statInStore(digest);
    if (!blob) return undefined;
    const linkedBefore = await unlessMissing(() => this.driver.stat(layout.layerLink(this.name, digest)));
    await this.link(digest);
    if ((await this.blobs.barrier.secure(start, [digest])).length === 0) return blob;
    if (!linkedBefore) await this.unlink(digest);
    return undefined;
  }

  /**
   * Removes the repository's link only, once every cache sharing the store knows; the data goes
   * when garbage collection finds it unused.
   */
  async unlink(digest: Digest): Promise<boolean> {
    this.blobs.cache?.forget(this.cacheKey(digest));
    if (!(await unlessMissing(() => this.driver.stat(layout.layerLink(this.name, digest))))) return false;
    return this.blobs.barrier.removing(() => deleteIfPresent(this.driver, layout.layerDir(this.name, digest)));
  }
}
