import { randomUUID, type Hash } from "node:crypto";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { LRUCache } from "lru-cache";
import { deleteIfPresent, exists, isPathNotFound, storeFault, unlessMissing, type FileWriter, type ReadBack, type StorageDriver } from "../storage/driver.js";
import { layout } from "./layout.js";
import type { BlobDescriptor, RepositoryBlobs } from "./blobs.js";
import type { WriteBarrier } from "./write-barrier.js";
import {
  DEFAULT_ALGORITHM,
  digestAlgorithm,
  hashToDigest,
  HashingStream,
  newHash,
  type Digest,
  type DigestAlgorithm,
} from "./digest.js";
import { RegistryError } from "./errors.js";
import type { RepositoryName } from "./names.js";

/** Where a caller that verifies the bytes itself writes a blob (see UploadStore.receive). */
export interface BlobSink {
  /** Where the bytes go; end it (or let pipeline end it) before commit. */
  readonly stream: Writable;
  /** Makes the written bytes the repository's blob `digest`, which the caller has verified. */
  commit(digest: Digest): Promise<void>;
  /** Discards what was written. */
  abort(): Promise<void>;
  /** Where the store keeps local files: reads what was written so far (see FileWriter.readBack). */
  readBack?(): Promise<ReadBack>;
}

/**
 * A request body not asked for yet: the store looks at what it declares (room, offset) before
 * a byte of it is read, and a client that waits for `100 Continue` sends nothing it would refuse.
 */
export interface IncomingBody {
  /** The length the client declared (Content-Length), when it did. */
  length: number | undefined;
  /** Starts reading it. */
  open(): Readable;
}

export interface UploadStatus {
  id: string;
  name: RepositoryName;
  /** Bytes received so far. */
  size: number;
  startedAt: Date;
}

/** A session the store could not remove when it failed is asked again after 1, 2, 4 ... s (at most a minute apart). */
const DISCARD_ATTEMPTS = 12;
const DISCARD_RETRY_MS = 1000;
const DISCARD_RETRY_MAX_MS = 60_000;

/** Upload ids are UUIDs (distribution's too); nothing else may reach the storage path. */
const UPLOAD_ID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function isUploadId(value: string): boolean {
  return UPLOAD_ID.test(value);
}

/**
 * The running hash of an upload, so the digest is ready when the last byte arrives. It is an
 * optimisation only: an upload continued by another instance, or after a restart, is hashed
 * again from the stored data when it completes.
 */
interface HashProgress {
  algorithm: DigestAlgorithm;
  hash: Hash;
  offset: number;
}

export interface UploadsOptions {
  /** How many uploads keep a running hash in memory (each costs a few hundred bytes). */
  hashCacheSize?: number;
}

/**
 * Upload sessions kept in the store (`_uploads/<id>/data` and `startedat`), as distribution
 * keeps them: any instance sharing the store can continue one, and a restart loses none.
 * Data becomes a blob only after its digest is verified, by a rename into place.
 */
export class UploadStore {
  private readonly progress: LRUCache<string, HashProgress>;
  private readonly busy = new Set<string>();

  constructor(
    private readonly driver: StorageDriver,
    /** A commit moves data that no collection may delete under it. */
    private readonly barrier: WriteBarrier,
    options: UploadsOptions = {},
  ) {
    this.progress = new LRUCache({ max: options.hashCacheSize ?? 1024 });
  }

  async create(name: RepositoryName): Promise<UploadStatus> {
    const { id, startedAt, writer } = await this.begin(name);
    await this.orDiscard(name, id, () => writer.close());
    this.progress.set(progressKey(name, id), { algorithm: DEFAULT_ALGORITHM, hash: newHash(DEFAULT_ALGORITHM), offset: 0 });
    return { id, name, size: 0, startedAt };
  }

  /**
   * Stores a blob whose bytes the caller hashes and verifies itself as they pass (a mirror
   * filling its cache). It is an ordinary upload session until commit, so a crash leaves only
   * what upload purging removes.
   */
  async receive(repo: RepositoryBlobs): Promise<BlobSink> {
    const { id, writer } = await this.begin(repo.name);
    return {
      stream: writer.stream,
      commit: async (digest) => {
        await writer.commit();
        await this.promote(repo, id, digest);
      },
      abort: async () => {
        writer.stream.destroy();
        await writer.cancel().catch(() => undefined);
        await this.remove(repo.name, id);
      },
      ...(writer.readBack && { readBack: writer.readBack.bind(writer) }),
    };
  }

  private async begin(name: RepositoryName): Promise<{ id: string; startedAt: Date; writer: FileWriter }> {
    const id = randomUUID();
    const startedAt = new Date();
    return this.orDiscard(name, id, async () => {
      await this.driver.putContent(layout.uploadStartedAt(name, id), Buffer.from(startedAt.toISOString()));
      return { id, startedAt, writer: await this.driver.writer(layout.uploadData(name, id), false) };
    });
  }

  /**
   * Runs a step of an upload; when the store fails it (full, failing), the upload is discarded
   * at once: its bytes would hold the room the next push needs, and a client told the store
   * failed starts again. Bytes a client's own disconnect left stay for it to resume after.
   */
  private async orDiscard<T>(name: RepositoryName, id: string, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      if (storeFault(err)) await this.discard(name, id, 1);
      throw err;
    }
  }

  /**
   * Removes a session now; a store that cannot remove it now either (read-only, down) is asked
   * again, twice as late each time, until it can or DISCARD_ATTEMPTS have failed (upload
   * purging remains for what is still left then).
   */
  private async discard(name: RepositoryName, id: string, attempt: number): Promise<void> {
    try {
      await this.remove(name, id);
    } catch {
      if (attempt >= DISCARD_ATTEMPTS) return;
      const again = setTimeout(() => void this.discard(name, id, attempt + 1), Math.min(DISCARD_RETRY_MS * 2 ** (attempt - 1), DISCARD_RETRY_MAX_MS));
      again.unref();
    }
  }

  /**
   * Refuses, before a byte of it is read, a body the volume of a store on local disk has no room
   * for; the upload goes with it, as after a write the disk refused.
   */
  private async refuseUnlessRoom(status: UploadStatus, body: IncomingBody): Promise<void> {
    const space = body.length !== undefined && body.length > 0 ? await this.driver.space?.() : undefined;
    if (!space || body.length === undefined || body.length <= space.free) return;
    await this.discard(status.name, status.id, 1);
    throw new RegistryError("STORAGE_FULL", `the registry's storage has ${space.free} bytes free, and this upload brings ${body.length}: retry once the operator has made room`);
  }

  async status(name: RepositoryName, id: string): Promise<UploadStatus | undefined> {
    if (!isUploadId(id)) return undefined;
    const info = await unlessMissing(() => this.driver.stat(layout.uploadData(name, id)));
    if (!info || info.isDir) return undefined;
    const started = await unlessMissing(() => this.driver.getContent(layout.uploadStartedAt(name, id)));
    const startedAt = started ? new Date(started.toString("utf8").trim()) : info.modTime;
    return { id, name, size: info.size, startedAt: Number.isNaN(startedAt.getTime()) ? info.modTime : startedAt };
  }

  /**
   * Appends a request body. With `expectedOffset` (a PATCH's Content-Range) the chunk must
   * start exactly where the upload ends.
   */
  append(name: RepositoryName, id: string, body: IncomingBody, expectedOffset?: number): Promise<UploadStatus> {
    return this.exclusive(name, id, async (status) => {
      if (expectedOffset !== undefined && expectedOffset !== status.size) {
        throw new RegistryError(
          "RANGE_INVALID",
          `chunk starts at ${expectedOffset} but the upload has ${status.size} bytes`,
          { size: status.size },
        );
      }
      const size = await this.write(status, body, false);
      return { ...status, size };
    });
  }

  /**
   * Finishes an upload: appends the final body if any, verifies the digest, moves the data
   * into place and links it into the repository. On a digest mismatch the upload is discarded.
   */
  complete(
    repo: RepositoryBlobs,
    id: string,
    expected: Digest,
    body: IncomingBody | undefined,
  ): Promise<BlobDescriptor> {
    return this.exclusive(repo.name, id, async (status) => {
      const size = await this.write(status, body, true);
      const actual = await this.digestOf(status, digestAlgorithm(expected), size);
      if (actual !== expected) {
        await this.remove(repo.name, id);
        throw new RegistryError("DIGEST_INVALID", `provided digest ${expected} does not match uploaded content ${actual}`);
      }
      await this.orDiscard(repo.name, id, () => this.promote(repo, id, expected));
      return { digest: expected, size };
    });
  }

  /** Moves a verified upload's data into place as the blob and links it into the repository. */
  private async promote(repo: RepositoryBlobs, id: string, digest: Digest): Promise<void> {
    // The link may land a moment before the data: nobody has been told of the blob yet. A blob
    // the store holds already stays (content-addressed, as distribution does): replacing it cost
    // freeing the old data's blocks before the 201 (65 ms for 256 MiB here), and on S3 a copy.
    await this.barrier.moving(digest, async () => {
      const stored = await exists(this.driver, layout.blobData(digest));
      await Promise.all([stored ? undefined : this.driver.move(layout.uploadData(repo.name, id), layout.blobData(digest)), repo.link(digest)]);
    });
    // Removing the session (its data too, when the blob was there already) need not delay the
    // response; upload purging collects it if this never runs.
    void this.remove(repo.name, id).catch(() => undefined);
  }

  cancel(name: RepositoryName, id: string): Promise<void> {
    return this.exclusive(name, id, () => this.remove(name, id));
  }

  private async remove(name: RepositoryName, id: string): Promise<void> {
    this.progress.delete(progressKey(name, id));
    await deleteIfPresent(this.driver, layout.uploadDir(name, id));
  }

  /** Appends body (if any) to the upload's data and returns its new size. */
  private async write(status: UploadStatus, body: IncomingBody | undefined, commit: boolean): Promise<number> {
    const key = progressKey(status.name, status.id);
    if (body) await this.refuseUnlessRoom(status, body);
    const writer = await this.orDiscard(status.name, status.id, () => this.driver.writer(layout.uploadData(status.name, status.id), true));
    if (writer.startSize < status.size) {
      // Removed since its status was read (purged, or cancelled elsewhere): appending made a new, empty one.
      await writer.cancel().catch(() => undefined);
      throw uploadGone(status.id);
    }
    const progress = this.takeProgress(key, writer.startSize);
    await this.orDiscard(status.name, status.id, async () => {
      try {
        if (body) {
          if (progress) await pipeline(body.open(), new HashingStream(progress.hash), writer.stream);
          else await pipeline(body.open(), writer.stream);
        }
        if (commit) await writer.commit();
        else await writer.close();
      } catch (err) {
        // What made it to the store stays, unless the store failed it (see orDiscard): a client
        // may resume after it; the running hash no longer matches it, so completion hashes the
        // stored data again.
        await (storeFault(err) ? writer.cancel() : writer.close()).catch(() => undefined);
        throw err;
      }
    });
    const size = writer.size();
    if (progress) this.progress.set(key, { ...progress, offset: size });
    return size;
  }

  /** The upload's running hash, if it covers exactly `offset` bytes; taken out of the cache either way. */
  private takeProgress(key: string, offset: number): HashProgress | undefined {
    const progress = this.progress.get(key);
    this.progress.delete(key);
    return progress?.offset === offset ? progress : undefined;
  }

  private async digestOf(status: UploadStatus, algorithm: DigestAlgorithm, size: number): Promise<Digest> {
    const progress = this.takeProgress(progressKey(status.name, status.id), size);
    if (progress?.algorithm === algorithm) return hashToDigest(algorithm, progress.hash);
    const hash = newHash(algorithm);
    for await (const chunk of await this.driver.reader(layout.uploadData(status.name, status.id))) {
      hash.update(chunk as Buffer);
    }
    return hashToDigest(algorithm, hash);
  }

  /** One request at a time per upload: a second concurrent one is refused, not interleaved. */
  private async exclusive<T>(name: RepositoryName, id: string, fn: (status: UploadStatus) => Promise<T>): Promise<T> {
    const key = progressKey(name, id);
    if (this.busy.has(key)) {
      throw new RegistryError("BLOB_UPLOAD_INVALID", "another request is writing to this upload");
    }
    this.busy.add(key);
    try {
      const status = await this.status(name, id);
      if (!status) throw uploadGone(id);
      return await fn(status);
    } catch (err) {
      // The session's data went while this request used it.
      if (isPathNotFound(err)) throw uploadGone(id);
      throw err;
    } finally {
      this.busy.delete(key);
    }
  }
}

function uploadGone(id: string): RegistryError {
  return new RegistryError("BLOB_UPLOAD_UNKNOWN", `upload ${id} is unknown to this repository`);
}

function progressKey(name: RepositoryName, id: string): string {
  return `${name}\0${id}`;
}
