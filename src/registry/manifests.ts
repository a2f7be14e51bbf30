import type { LRUCache } from "lru-cache";
import { deleteIfPresent, unlessMissing, type StorageDriver } from "../storage/driver.js";
import { layout } from "./layout.js";
import { writeLink, type BlobStore, type RepositoryBlobs } from "./blobs.js";
import { DEFAULT_ALGORITHM, digestAlgorithm, digestOf, isDigest, type Digest } from "./digest.js";
import { RegistryError } from "./errors.js";
import { parseManifest, storedMediaType, type Descriptor, type ManifestInfo } from "./manifest-format.js";
import type { Tag } from "./names.js";
import type { ReferrerIndex } from "./referrers.js";
import type { WriteStart } from "./write-barrier.js";
import type { TagStore } from "./tags.js";

export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  content: Buffer;
}

/** distribution's default limit for a manifest body; larger ones are refused with 413. */
export const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Manifest content is immutable per digest, so any instance may keep it (shared by repositories).
 * Kept as a latin1 string in V8's heap, which its collector compacts: as Buffers of their own, the
 * entries a soak's pushes churned through scattered malloc's heap, which kept growing (see
 * filesystem.ts's recent content).
 */
export type ManifestCache = LRUCache<Digest, { mediaType: string; content: string }>;

export interface PutResult {
  digest: Digest;
  info: ManifestInfo;
}

export interface PutOptions {
  /**
   * Whether every blob and child manifest the manifest names must be present (a push). A mirror
   * caching what its peer already accepted stores manifests before their blobs.
   */
  checkReferences: boolean;
}

/**
 * A repository's manifests: content lives in the global blob store, membership in
 * `_manifests/revisions`, names in the tag store.
 */
export class ManifestStore {
  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
    private readonly repoBlobs: RepositoryBlobs,
    private readonly tags: TagStore,
    private readonly referrers: ReferrerIndex,
    private readonly cache: ManifestCache,
  ) {}

  private get name() {
    return this.tags.name;
  }

  async exists(digest: Digest): Promise<boolean> {
    const info = await unlessMissing(() => this.driver.stat(layout.revisionLink(this.name, digest)));
    return info !== undefined;
  }

  /** Linked here and its content in the store: what an index pushed now may name. */
  async pullable(digest: Digest): Promise<boolean> {
    return (await this.exists(digest)) && (await this.blobs.statInStore(digest)) !== undefined;
  }

  /** The manifest by digest, if this repository holds it. */
  async get(digest: Digest): Promise<StoredManifest | undefined> {
    if (!(await this.exists(digest))) return undefined;
    const cached = this.cache.get(digest);
    if (cached) return { digest, mediaType: cached.mediaType, content: Buffer.from(cached.content, "latin1") };
    const content = await this.blobs.getContent(digest);
    if (!content) return undefined;
    const mediaType = storedMediaType(content);
    this.cache.set(digest, { mediaType, content: content.toString("latin1") });
    return { digest, mediaType, content };
  }

  /** Resolves a tag or digest reference to a manifest. */
  async resolve(reference: Tag | Digest): Promise<StoredManifest | undefined> {
    const digest = isDigest(reference) ? reference : await this.tags.resolve(reference);
    return digest ? this.get(digest) : undefined;
  }

  async put(reference: Tag | Digest, content: Buffer, contentType: string | undefined, options: PutOptions = { checkReferences: true }): Promise<PutResult> {
    if (content.length > MANIFEST_MAX_BYTES) {
      throw new RegistryError("MANIFEST_TOO_BIG", `manifest is larger than ${MANIFEST_MAX_BYTES} bytes`);
    }
    const info = parseManifest(content, contentType);
    const byDigest = isDigest(reference);
    const digest = digestOf(content, byDigest ? digestAlgorithm(reference) : DEFAULT_ALGORITHM);
    if (byDigest && digest !== reference) {
      throw new RegistryError("DIGEST_INVALID", `manifest digest ${digest} does not match reference ${reference}`);
    }
    const start = this.blobs.barrier.begin();
    await this.blobs.barrier.admit();
    if (options.checkReferences) await this.checkReferences(info);

    // The store, not the cache: content a collector removed meanwhile must be written again.
    if (!(await this.blobs.statInStore(digest))) await this.blobs.putContent(digest, content);
    const linkedBefore = await this.exists(digest);
    await writeLink(this.driver, layout.revisionLink(this.name, digest), digest);
    await this.keepReferences(start, digest, content, info, options.checkReferences, linkedBefore);
    if (info.subject) await this.referrers.add(info.subject.digest, digest);
    if (!byDigest) await this.tags.tag(reference, digest);
    this.cache.set(digest, { mediaType: info.mediaType, content: content.toString("latin1") });
    return { digest, info };
  }

  /** Deletes a manifest and every tag that points at it, as distribution does. */
  async delete(digest: Digest): Promise<boolean> {
    const manifest = await this.get(digest);
    if (!manifest) return false;
    for (const tag of await this.tags.lookup(digest)) await this.tags.untag(tag);
    await deleteIfPresent(this.driver, layout.revisionDir(this.name, digest));
    const subject = subjectOf(manifest);
    if (subject) await this.referrers.remove(subject, digest);
    return true;
  }

  /**
   * With the revision linked, makes sure no collection deletes what it names (or the manifest's
   * own content) from now on. What one removed meanwhile: the content is written again; a
   * referenced blob that is gone makes the push fail as if it had never been there.
   */
  private async keepReferences(start: WriteStart, digest: Digest, content: Buffer, info: ManifestInfo, required: boolean, linkedBefore: boolean): Promise<void> {
    const gone = await this.blobs.barrier.secure(start, [digest, ...info.blobs.map((d) => d.digest), ...info.children.map((d) => d.digest)]);
    if (gone.includes(digest)) await this.blobs.putContent(digest, content);
    const missing = required ? gone.find((d) => d !== digest) : undefined;
    if (missing === undefined) return;
    if (!linkedBefore) await deleteIfPresent(this.driver, layout.revisionDir(this.name, digest));
    throw new RegistryError("MANIFEST_BLOB_UNKNOWN", `manifest references ${missing}, which garbage collection removed from this repository meanwhile`, { digest: missing });
  }

  private async checkReferences(info: ManifestInfo): Promise<void> {
    const missing = (await Promise.all([
      ...info.blobs.map(async (d) => ((await this.blobMatches(d)) ? undefined : d)),
      ...info.children.map(async (d) => ((await this.pullable(d.digest)) ? undefined : d)),
    ])).filter((d): d is Descriptor => d !== undefined);
    const first = missing[0];
    if (first) {
      throw new RegistryError("MANIFEST_BLOB_UNKNOWN", `manifest references ${first.digest}, which this repository does not have`, {
        digest: first.digest,
      });
    }
  }

  private async blobMatches(descriptor: Descriptor): Promise<boolean> {
    // Asked of the store: a manifest is acknowledged only for blobs that are there now.
    const blob = await this.repoBlobs.statInStore(descriptor.digest);
    if (!blob) return false;
    if (blob.size !== descriptor.size) {
      throw new RegistryError(
        "MANIFEST_INVALID",
        `descriptor of ${descriptor.digest} says ${descriptor.size} bytes but the blob has ${blob.size}`,
      );
    }
    return true;
  }
}

/** The subject digest a stored manifest names, if any. */
export function subjectOf(manifest: StoredManifest): Digest | undefined {
  try {
    const json = JSON.parse(manifest.content.toString("utf8")) as { subject?: { digest?: unknown } };
    const digest = json.subject?.digest;
    return typeof digest === "string" && isDigest(digest) ? digest : undefined;
  } catch {
    return undefined;
  }
}
