import type { Readable } from "node:stream";
import { deleteIfPresent, isPathNotFound, type StorageDriver } from "../storage/driver.js";
import { layout } from "../storage/layout.js";
import { DescriptorCache } from "./descriptor-cache.js";
import { parseDigest, type Digest } from "./digest.js";
import { RegistryError } from "./errors.js";
import { RemovalFence, type FenceTiming } from "./removal-fence.js";
import type { RepositoryName } from "./names.js";

export interface BlobDescriptor {
  digest: Digest;
  size: number;
}

/** Runs fn and answers undefined when the path it touches does not exist. */
export async function unlessMissing<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (isPathNotFound(err)) return undefined;
    throw err;
  }
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

export interface BlobStoreOptions {
  /** storage.cache.blobdescriptor: entries of the in-memory descriptor cache; none without. */
  cacheEntries?: number;
  /** Answer blob GETs with a redirect to the store when the driver can presign URLs. */
  redirect?: boolean;
  /** The removal fence's timing (tests shorten it). */
  fence?: FenceTiming;
  /** Where the fence reports a removal that outlasted its heartbeat. */
  warn?: (message: string) => void;
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
  /** Every removal of blob data or links in this process goes through it. */
  readonly removals: RemovalFence;

  constructor(
    private readonly driver: StorageDriver,
    private readonly options: BlobStoreOptions = {},
  ) {
    this.cache = options.cacheEntries ? new DescriptorCache(driver, options.cacheEntries, options.fence) : undefined;
    this.removals = new RemovalFence(driver, options.fence, options.warn);
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

  /** Deletes the blob's data (garbage collection) once every cache sharing the store knows. */
  remove(digest: Digest): Promise<boolean> {
    this.cache?.forget(digest);
    return this.removals.remove(() => deleteIfPresent(this.driver, layout.blobDir(digest)));
  }

  close(): void {
    this.cache?.close();
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

  /** The linked blob's size, from the cache when it may vouch for it. */
  async stat(digest: Digest): Promise<BlobDescriptor | undefined> {
    const cached = this.blobs.cache?.get(this.cacheKey(digest));
    if (cached !== undefined) return { digest, size: cached };
    return this.lookUp(digest, (d) => this.blobs.stat(d));
  }

  /** The linked blob's size as the store says now: link and data both present. */
  statInStore(digest: Digest): Promise<BlobDescriptor | undefined> {
    return this.lookUp(digest, (d) => this.blobs.statInStore(d));
  }

  private async lookUp(digest: Digest, data: (digest: Digest) => Promise<BlobDescriptor | undefined>): Promise<BlobDescriptor | undefined> {
    const cache = this.blobs.cache;
    const snapshot = cache?.snapshot();
    const link = await unlessMissing(() => this.driver.stat(layout.layerLink(this.name, digest)));
    if (!link) return undefined;
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

  link(digest: Digest): Promise<void> {
    return writeLink(this.driver, layout.layerLink(this.name, digest), digest);
  }

  /**
   * Removes the repository's link only, once every cache sharing the store knows; the data goes
   * when garbage collection finds it unused.
   */
  async unlink(digest: Digest): Promise<boolean> {
    this.blobs.cache?.forget(this.cacheKey(digest));
    if (!(await unlessMissing(() => this.driver.stat(layout.layerLink(this.name, digest))))) return false;
    return this.blobs.removals.remove(() => deleteIfPresent(this.driver, layout.layerDir(this.name, digest)));
  }
}
