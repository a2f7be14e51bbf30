import { LRUCache } from "lru-cache";
import type { StorageDriver } from "../storage/driver.js";
import { BlobStore, RepositoryBlobs, type BlobStoreOptions } from "./blobs.js";
import { listRepositories, type CatalogPage } from "./catalog.js";
import type { Digest } from "./digest.js";
import type { Descriptor } from "./manifest-format.js";
import { ManifestStore, subjectOf, type ManifestCache, type StoredManifest } from "./manifests.js";
import type { RepositoryName } from "./names.js";
import { ReferrerIndex } from "./referrers.js";
import { TagStore } from "./tags.js";
import { UploadStore } from "./uploads.js";

export interface RegistryOptions extends BlobStoreOptions {
  /** Manifests kept in memory, by digest (immutable content, so never stale). */
  manifestCacheEntries?: number;
}

/** The namespace: every repository of one store. */
export class Registry {
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  private readonly manifestCache: ManifestCache;

  constructor(
    readonly driver: StorageDriver,
    options: RegistryOptions = {},
  ) {
    this.blobs = new BlobStore(driver, options);
    this.uploads = new UploadStore(driver);
    this.manifestCache = new LRUCache({
      max: options.manifestCacheEntries ?? 10_000,
      maxSize: 64 * 1024 * 1024,
      sizeCalculation: (m) => m.content.length + 256,
    });
  }

  repository(name: RepositoryName): Repository {
    return new Repository(this.driver, this.blobs, name, this.manifestCache);
  }

  catalog(limit: number, last?: string): Promise<CatalogPage> {
    return listRepositories(this.driver, limit, last);
  }
}

export class Repository {
  readonly blobs: RepositoryBlobs;
  readonly tags: TagStore;
  readonly referrerIndex: ReferrerIndex;
  readonly manifests: ManifestStore;

  constructor(driver: StorageDriver, blobStore: BlobStore, readonly name: RepositoryName, cache: ManifestCache) {
    this.blobs = new RepositoryBlobs(driver, blobStore, name);
    this.tags = new TagStore(driver, name);
    this.referrerIndex = new ReferrerIndex(driver, name);
    this.manifests = new ManifestStore(driver, blobStore, this.blobs, this.tags, this.referrerIndex, cache);
  }

  /** The descriptors of the manifests whose subject is `subject`, for the referrers API. */
  async referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    const digests = await this.referrerIndex.list(subject);
    const manifests = await Promise.all(digests.map((d) => this.manifests.get(d)));
    return manifests
      .filter((m): m is StoredManifest => m !== undefined && subjectOf(m) === subject)
      .map(referrerDescriptor)
      .filter((d) => artifactType === undefined || d.artifactType === artifactType);
  }
}

/** OCI distribution-spec: artifactType is the manifest's, else its config's media type. */
function referrerDescriptor(manifest: StoredManifest): Descriptor {
  const json = JSON.parse(manifest.content.toString("utf8")) as {
    artifactType?: string;
    config?: { mediaType?: string };
    annotations?: Record<string, string>;
  };
  const descriptor: Descriptor = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.content.length };
  const artifactType = json.artifactType ?? json.config?.mediaType;
  if (artifactType) descriptor.artifactType = artifactType;
  if (json.annotations) descriptor.annotations = json.annotations;
  return descriptor;
}
