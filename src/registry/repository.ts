import type { Readable } from "node:stream";
import type { BlobDescriptor } from "./blobs.js";
import type { CatalogPage } from "./catalog.js";
import type { Digest } from "./digest.js";
import type { Descriptor } from "./manifest-format.js";
import type { PutResult, StoredManifest } from "./manifests.js";
import type { RepositoryName, Tag } from "./names.js";
import type { IncomingBody, UploadStatus } from "./uploads.js";

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
 * One repository, as the HTTP layer uses it for every read and every write. The store
 * implements it (registry.ts); a pull-through mirror implements it over a stored one and its
 * peer (proxy/mirror.ts), as distribution's proxy wraps its local store.
 */
export interface Repository {
  readonly name: RepositoryName;

  /**
   * The size, for a HEAD. `keep` (a registry that takes pushes): a client that hears it may skip
   * uploading the blob, so it is kept from garbage collection from then on.
   */
  statBlob(digest: Digest, keep: boolean): Promise<BlobDescriptor | undefined>;
  /**
   * The blob's content. `range`: the client's Range header, when it asks for one byte range (a
   * lazy-pulling client reading a layer as a filesystem); a mirror then answers without waiting
   * for the whole blob.
   */
  fetchBlob(digest: Digest, range?: string): Promise<BlobContent | undefined>;
  /** A client's DELETE of a blob: the repository's link goes; false when there was none. */
  unlinkBlob(digest: Digest): Promise<boolean>;
  /** A cross-repository mount from `from`; undefined when the blob cannot be mounted. */
  mountBlob(from: RepositoryName, digest: Digest): Promise<BlobDescriptor | undefined>;

  manifest(reference: Tag | Digest): Promise<ManifestLookup | undefined>;
  /** A client's push: the manifest under its digest, and under `reference` when that is a tag. */
  putManifest(reference: Tag | Digest, content: Buffer, contentType: string | undefined): Promise<PutResult>;
  /** A client's DELETE of a manifest by digest, with every tag pointing at it; false when there was none. */
  deleteManifest(digest: Digest): Promise<boolean>;
  /** A client's DELETE of a tag (the manifest stays); false when there was none. */
  untag(tag: Tag): Promise<boolean>;
  /** All tags, sorted; undefined when the repository is unknown. */
  listTags(): Promise<Tag[] | undefined>;
  /** The descriptors of the manifests whose subject is `subject`, for the referrers API. */
  referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]>;

  startUpload(): Promise<UploadStatus>;
  uploadStatus(id: string): Promise<UploadStatus | undefined>;
  appendUpload(id: string, body: IncomingBody, expectedOffset?: number): Promise<UploadStatus>;
  /** Verifies the digest, stores the blob and links it here; the session goes either way on a mismatch. */
  completeUpload(id: string, digest: Digest, body: IncomingBody | undefined): Promise<BlobDescriptor>;
  cancelUpload(id: string): Promise<void>;
}

/** Every repository of a registry, as the HTTP layer sees them. */
export interface Namespace {
  repository(name: RepositoryName): Repository;
  catalog(limit: number, last?: string): Promise<CatalogPage>;
  /** Releases what it holds beyond its store (background work, connections). */
  close(): Promise<void>;
}
