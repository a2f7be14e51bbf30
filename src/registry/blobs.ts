import type { Readable } from "node:stream";
import { deleteIfPresent, isPathNotFound, type StorageDriver } from "../storage/driver.js";
import { layout } from "../storage/layout.js";
import { LRUCache } from "lru-cache";
import { parseDigest, type Digest } from "./digest.js";
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

/**
 * storage.cache.blobdescriptor (layerinfo): blob sizes by digest, and which repositories link
 * which blobs, so repeated HEADs and manifest checks skip the store. Like distribution's, it
 * trusts its entries until they are evicted or this instance deletes them.
 */
export type DescriptorCache = LRUCache<string, number>;

export function createDescriptorCache(entries: number): DescriptorCache {
  return new LRUCache<string, number>({ max: entries });
}

export interface BlobStoreOptions {
  cache?: DescriptorCache;
  /** Answer blob GETs with a redirect to the store when the driver can presign URLs. */
  redirect?: boolean;
}

/** The global, content-addressed blob data shared by all repositories. */
export class BlobStore {
  constructor(
    private readonly driver: StorageDriver,
    private readonly options: BlobStoreOptions = {},
  ) {}

  get cache(): DescriptorCache | undefined {
    return this.options.cache;
  }

  async stat(digest: Digest): Promise<BlobDescriptor | undefined> {
    const cached = this.cache?.get(digest);
    if (cached !== undefined) return { digest, size: cached };
    const info = await unlessMissing(() => this.driver.stat(layout.blobData(digest)));
    if (!info || info.isDir) return undefined;
    this.cache?.set(digest, info.size);
    return { digest, size: info.size };
  }

  /** A URL the client may fetch the blob from directly, when redirects are on and possible. */
  redirectURL(digest: Digest): Promise<string | undefined> {
    if (!this.options.redirect || !this.driver.redirectURL) return Promise.resolve(undefined);
    return this.driver.redirectURL(layout.blobData(digest));
  }

  open(digest: Digest, offset?: number, end?: number): Promise<Readable> {
    return this.driver.reader(layout.blobData(digest), offset, end);
  }

  getContent(digest: Digest): Promise<Buffer | undefined> {
    return unlessMissing(() => this.driver.getContent(layout.blobData(digest)));
  }

  /** Stores small content (a manifest) under its digest. */
  async putContent(digest: Digest, content: Buffer): Promise<void> {
    await this.driver.putContent(layout.blobData(digest), content);
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

  private get cacheKey(): string {
    return `${this.name}@`;
  }

  async stat(digest: Digest): Promise<BlobDescriptor | undefined> {
    const cache = this.blobs.cache;
    const cached = cache?.get(this.cacheKey + digest);
    if (cached !== undefined) return { digest, size: cached };
    const link = await unlessMissing(() => this.driver.stat(layout.layerLink(this.name, digest)));
    if (!link) return undefined;
    const blob = await this.blobs.stat(digest);
    if (blob) cache?.set(this.cacheKey + digest, blob.size);
    return blob;
  }

  redirectURL(digest: Digest): Promise<string | undefined> {
    return this.blobs.redirectURL(digest);
  }

  open(digest: Digest, offset?: number, end?: number): Promise<Readable> {
    return this.blobs.open(digest, offset, end);
  }

  link(digest: Digest): Promise<void> {
    return writeLink(this.driver, layout.layerLink(this.name, digest), digest);
  }

  /** Removes the repository's link only; the data goes when garbage collection finds it unused. */
  async unlink(digest: Digest): Promise<boolean> {
    this.blobs.cache?.delete(this.cacheKey + digest);
    return deleteIfPresent(this.driver, layout.layerDir(this.name, digest));
  }
}
