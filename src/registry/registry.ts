import type { Readable } from "node:stream";
import { LRUCache } from "lru-cache";
import type { StorageDriver } from "../storage/driver.js";
import { BlobStore, RepositoryBlobs, type BlobDescriptor, type BlobStoreOptions } from "./blobs.js";
import { listRepositories, type CatalogPage } from "./catalog.js";
import type { Digest } from "./digest.js";
import type { Descriptor } from "./manifest-format.js";
import { ManifestStore, subjectOf, type ManifestCache, type PutResult, type ReferenceFallback, type StoredManifest } from "./manifests.js";
import type { RepositoryName, Tag } from "./names.js";
import { ReferrerIndex } from "./referrers.js";
import { TagStore } from "./tags.js";
import { UploadStore } from "./uploads.js";

export type RegistryOptions = BlobStoreOptions;

/**
 * Manifests kept in memory, by digest (immutable content, so never stale): the hot set of what
 * a cluster is starting now, not the store. Small bounds, so that memory reaches its plateau
 * within minutes: under a soak of unique pushes a 10,000-entry cache was still filling after 10
 * minutes (+5-11% RSS from the first third to the last); with 1,000 it was full in 3 (+2.6%).
 */
const MANIFEST_CACHE = { entries: 1000, bytes: 8 * 1024 * 1024 };

/**
 * Who asks: a client, or a sibling mirror of the fleet, which has already chosen this instance
 * as the one to fetch for it (and whose request must not be forwarded again).
 */
export type Caller = "client" | "sibling";

/** The namespace: every repository of one store. */
export class Registry {
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  protected readonly manifestCache: ManifestCache;

  constructor(
    readonly driver: StorageDriver,
    options: RegistryOptions = {},
  ) {
    this.blobs = new BlobStore(driver, options);
    this.uploads = new UploadStore(driver, this.blobs.barrier);
    this.manifestCache = new LRUCache({
      max: MANIFEST_CACHE.entries,
      maxSize: MANIFEST_CACHE.bytes,
      sizeCalculation: (m) => m.content.length + 256,
    });
  }

  repository(name: RepositoryName, _caller: Caller = "client"): Repository {
    return new Repository(this.driver, this.blobs, name, this.manifestCache);
  }

  catalog(limit: number, last?: string): Promise<CatalogPage> {
    return listRepositories(this.driver, limit, last);
  }

  /** Releases what the registry holds beyond its store (the cache's watch, a mirror's connections). */
  close(): Promise<void> {
    return this.blobs.close();
  }
}

/** A blob a GET can serve: its size, its bytes from an offset, or a URL to send the client to. */
export interface BlobContent extends BlobDescriptor {
  open(start: number, end: number): Promise<Readable>;
  redirectURL(): Promise<string | undefined>;
}

export interface ManifestLookup {
  manifest: StoredManifest;
  /** Why a cached copy is served although it may be out of date (a mirror whose peer is down). */
  stale?: string;
}

/**
 * One repository. The read methods (blobs, manifests, tags, referrers) are what the HTTP layer
 * calls; a mirror overrides them to consult its peer, and the missing-reference hooks to fetch
 * what a pushed manifest names but this store lacks.
 */
export class Repository implements ReferenceFallback {
  readonly blobs: RepositoryBlobs;
  readonly tags: TagStore;
  readonly referrerIndex: ReferrerIndex;
  readonly manifests: ManifestStore;

  constructor(driver: StorageDriver, blobStore: BlobStore, readonly name: RepositoryName, cache: ManifestCache) {
    this.blobs = new RepositoryBlobs(driver, blobStore, name);
    this.tags = new TagStore(driver, name);
    this.referrerIndex = new ReferrerIndex(driver, name);
    this.manifests = new ManifestStore(driver, blobStore, this.blobs, this.tags, this.referrerIndex, cache, this);
  }

  /**
   * The size, for a HEAD. `keep` (a registry that takes pushes): a client that hears it may skip
   * uploading the blob, so it is kept from garbage collection from then on.
   */
  statBlob(digest: Digest, keep: boolean): Promise<BlobDescriptor | undefined> {
    return keep ? this.blobs.statKept(digest) : this.blobs.stat(digest);
  }

  async fetchBlob(digest: Digest): Promise<BlobContent | undefined> {
    const blob = await this.blobs.stat(digest);
    return blob && this.storedBlob(blob);
  }

  /** A blob of this store as BlobContent. */
  protected storedBlob(blob: BlobDescriptor): BlobContent {
    return {
      ...blob,
      open: (start, end) => this.blobs.open(blob.digest, start, end),
      redirectURL: () => this.blobs.redirectURL(blob.digest),
    };
  }

  async manifest(reference: Tag | Digest): Promise<ManifestLookup | undefined> {
    const manifest = await this.manifests.resolve(reference);
    return manifest && { manifest };
  }

  /** A client's push: the manifest under its digest, and under `reference` when that is a tag. */
  putManifest(reference: Tag | Digest, content: Buffer, contentType: string | undefined): Promise<PutResult> {
    return this.manifests.put(reference, content, contentType);
  }

  /** A client's DELETE of a tag (the manifest stays); false when there was none. */
  untag(tag: Tag): Promise<boolean> {
    return this.tags.untag(tag);
  }

  /** All tags, sorted; undefined when the repository is unknown. */
  listTags(): Promise<Tag[] | undefined> {
    return this.tags.list();
  }

  /** The descriptors of the manifests whose subject is `subject`, for the referrers API. */
  async referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    const found = await this.referrerDescriptors(subject);
    return found.filter((d) => artifactType === undefined || d.artifactType === artifactType);
  }

  protected async referrerDescriptors(subject: Digest): Promise<Descriptor[]> {
    const digests = await this.referrerIndex.list(subject);
    const manifests = await Promise.all(digests.map((d) => this.manifests.get(d)));
    return manifests.filter((m): m is StoredManifest => m !== undefined && subjectOf(m) === subject).map(referrerDescriptor);
  }

  missingBlob(_digest: Digest): Promise<BlobDescriptor | undefined> {
    return Promise.resolve(undefined);
  }

  missingManifest(_digest: Digest): Promise<boolean> {
    return Promise.resolve(false);
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
