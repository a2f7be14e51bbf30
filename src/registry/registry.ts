import { LRUCache } from "lru-cache";
import type { StorageDriver } from "../storage/driver.js";
import { BlobStore, RepositoryBlobs, type BlobDescriptor, type BlobStoreOptions } from "./blobs.js";
import { listRepositories, type CatalogPage } from "./catalog.js";
import type { Digest } from "./digest.js";
import type { Descriptor } from "./manifest-format.js";
import { ManifestStore, subjectOf, type ManifestCache, type PutResult, type StoredManifest } from "./manifests.js";
import type { RepositoryName, Tag } from "./names.js";
import { ReferrerIndex } from "./referrers.js";
import { TagStore } from "./tags.js";
import type { BlobContent, ManifestLookup, Namespace, Repository } from "./repository.js";
import { UploadStore, type IncomingBody, type UploadStatus } from "./uploads.js";

export type RegistryOptions = BlobStoreOptions;

/**
 * Manifests kept in memory, by digest (immutable content, so never stale): the hot set of what
 * a cluster is starting now, not the store. Small bounds, so that memory reaches its plateau
 * within minutes: under a soak of unique pushes a 10,000-entry cache was still filling after 10
 * minutes (+5-11% RSS from the first third to the last); with 1,000 it was full in 3 (+2.6%).
 */
const MANIFEST_CACHE = { entries: 1000, bytes: 8 * 1024 * 1024 };

/** Every repository of one store. */
export class Registry implements Namespace {
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  private readonly manifestCache: ManifestCache;

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

  repository(name: RepositoryName): StoredRepository {
    return new StoredRepository(this.driver, this.blobs, this.uploads, name, this.manifestCache);
  }

  catalog(limit: number, last?: string): Promise<CatalogPage> {
    return listRepositories(this.driver, limit, last);
  }

  /** Releases what the registry holds beyond its store (the write barrier's background work). */
  close(): Promise<void> {
    return this.blobs.close();
  }
}

/** One repository of the store; its parts (blobs, tags, manifests) are what maintenance works on. */
export class StoredRepository implements Repository {
  readonly blobs: RepositoryBlobs;
  readonly tags: TagStore;
  readonly referrerIndex: ReferrerIndex;
  readonly manifests: ManifestStore;

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobStore: BlobStore,
    private readonly uploads: UploadStore,
    readonly name: RepositoryName,
    cache: ManifestCache,
  ) {
    this.blobs = new RepositoryBlobs(driver, blobStore, name);
    this.tags = new TagStore(driver, name);
    this.referrerIndex = new ReferrerIndex(driver, name);
    this.manifests = new ManifestStore(driver, blobStore, this.blobs, this.tags, this.referrerIndex, cache);
  }

  statBlob(digest: Digest, keep: boolean): Promise<BlobDescriptor | undefined> {
    return keep ? this.blobs.statKept(digest) : this.blobs.stat(digest);
  }

  async fetchBlob(digest: Digest): Promise<BlobContent | undefined> {
    const blob = await this.blobs.stat(digest);
    return blob && this.storedBlob(blob);
  }

  /** A blob of this store as BlobContent. */
  storedBlob(blob: BlobDescriptor): BlobContent {
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

  putManifest(reference: Tag | Digest, content: Buffer, contentType: string | undefined): Promise<PutResult> {
    return this.manifests.put(reference, content, contentType);
  }

  deleteManifest(digest: Digest): Promise<boolean> {
    return this.manifests.delete(digest);
  }

  untag(tag: Tag): Promise<boolean> {
    return this.tags.untag(tag);
  }

  listTags(): Promise<Tag[] | undefined> {
    return this.tags.list();
  }

  async referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    return ofArtifactType(await this.referrerDescriptors(subject), artifactType);
  }

  /** Every referrer of `subject` held here, unfiltered. */
  async referrerDescriptors(subject: Digest): Promise<Descriptor[]> {
    const digests = await this.referrerIndex.list(subject);
    const manifests = await Promise.all(digests.map((d) => this.manifests.get(d)));
    return manifests.filter((m): m is StoredManifest => m !== undefined && subjectOf(m) === subject).map(referrerDescriptor);
  }

  unlinkBlob(digest: Digest): Promise<boolean> {
    return this.blobs.unlink(digest);
  }

  mountBlob(from: RepositoryName, digest: Digest): Promise<BlobDescriptor | undefined> {
    return this.blobs.mount(new RepositoryBlobs(this.driver, this.blobStore, from), digest);
  }

  startUpload(): Promise<UploadStatus> {
    return this.uploads.create(this.name);
  }

  uploadStatus(id: string): Promise<UploadStatus | undefined> {
    return this.uploads.status(this.name, id);
  }

  appendUpload(id: string, body: IncomingBody, expectedOffset?: number): Promise<UploadStatus> {
    return this.uploads.append(this.name, id, body, expectedOffset);
  }

  completeUpload(id: string, digest: Digest, body: IncomingBody | undefined): Promise<BlobDescriptor> {
    return this.uploads.complete(this.blobs, id, digest, body);
  }

  cancelUpload(id: string): Promise<void> {
    return this.uploads.cancel(this.name, id);
  }
}

/** The referrers API's artifactType filter: all of them without one. */
export function ofArtifactType(descriptors: Descriptor[], artifactType: string | undefined): Descriptor[] {
  return artifactType === undefined ? descriptors : descriptors.filter((d) => d.artifactType === artifactType);
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
