import { Writable } from "node:stream";
import { StorageUnavailableError, type FileWriter } from "./driver.js";
import type { ObjectStore, PartInfo } from "./object-store.js";

/** The largest single part copy S3 and OSS accept. */
const MAX_COPY_PART = 5 * 1024 * 1024 * 1024;

export function sumParts(parts: PartInfo[]): number {
  return parts.reduce((sum, p) => sum + p.size, 0);
}

/** The newest unfinished upload of exactly this key. */
export async function findUpload(store: ObjectStore, key: string): Promise<string | undefined> {
  const uploads = (await store.listUploads(key)).filter((u) => u.key === key);
  uploads.sort((a, b) => a.initiated.getTime() - b.initiated.getTime());
  return uploads[uploads.length - 1]?.id;
}

/**
 * A resumable writer on a multipart upload, the way distribution's s3 driver keeps one: the
 * upload's parts are the state, so any instance can continue it. Bytes are buffered up to one
 * part (chunksize) and sent as it fills; nothing holds a whole blob.
 *
 * Stores refuse a small part unless it is the last, but close() must persist whatever arrived.
 * When more data follows such a part, the upload is completed into the object, a new upload
 * starts from it (server-side part copy, or a download when smaller than a part may be), and
 * that interim object is deleted once its bytes are safely in the new upload.
 */
export class MultipartWriter implements FileWriter {
  readonly stream: Writable;
  private pending: Buffer[] = [];
  private pendingSize = 0;
  private written = 0;
  /** The object at the key holds bytes that are pending here and in no part yet. */
  private objectHoldsPending = false;
  /** The part being sent while the next one fills (one at a time, so parts stay in order). */
  private sending: Promise<void> = Promise.resolve();
  private done = false;

  private constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    partSize: number,
    private uploadId: string,
    private parts: PartInfo[],
    readonly startSize: number,
  ) {
    this.stream = new Writable({
      highWaterMark: 1024 * 1024,
      write: (chunk: Buffer, _encoding, callback) => {
        this.pending.push(chunk);
        this.pendingSize += chunk.length;
        this.written += chunk.length;
        if (this.pendingSize < partSize) return callback();
        // Wait for the previous part, then send this one while the next fills: memory stays
        // at two parts, and receiving never waits for the store's round trip.
        this.sending.then(
          () => {
            this.sending = this.flushPart();
            this.sending.catch(() => undefined);
            callback();
          },
          (err: unknown) => callback(this.failure(err)),
        );
      },
    });
  }

  static async open(store: ObjectStore, key: string, partSize: number, append: boolean): Promise<MultipartWriter> {
    if (!append) {
      for (const upload of await store.listUploads(key)) if (upload.key === key) await store.abortUpload(key, upload.id);
      return new MultipartWriter(store, key, partSize, await store.createUpload(key), [], 0);
    }
    const existing = await findUpload(store, key);
    const parts = existing ? await store.listParts(key, existing) : [];
    if (existing && parts.length > 0) {
      // An object beside a started upload is the interim one of a restart: its bytes are in part 1.
      if (await store.head(key)) await store.deleteMany([key]);
      return new MultipartWriter(store, key, partSize, existing, parts, sumParts(parts));
    }
    const size = (await store.head(key))?.size ?? 0;
    const writer = new MultipartWriter(store, key, partSize, existing ?? (await store.createUpload(key)), [], size);
    const head = size > 0 ? await writer.continueFromObject(size) : undefined;
    if (head) {
      writer.pending.push(head);
      writer.pendingSize = head.length;
      writer.objectHoldsPending = true;
    }
    return writer;
  }

  size(): number {
    return this.startSize + this.written;
  }

  /** A store that went away mid-upload is the store's failure (503), said as the driver says it. */
  private failure(err: unknown): Error {
    if (err instanceof StorageUnavailableError || this.store.classify(err) !== "unavailable") return err as Error;
    return new StorageUnavailableError(this.key, err);
  }

  /** Runs the end of the upload, its store failures said as the driver says them. */
  private async ending(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      throw this.failure(err);
    }
  }

  /**
   * Takes the object now at the key as the start of the (new, empty) upload: copied into part 1
   * when large enough, else returned to lead the next part (and the object kept until then).
   */
  private async continueFromObject(size: number): Promise<Buffer | undefined> {
    if (size < this.store.minPart) {
      const head = await this.store.readAll(this.key);
      if (!head) throw new Error(`${this.key} vanished while its upload was resumed`);
      return head;
    }
    for (let start = 0; start < size; start += MAX_COPY_PART) {
      const end = Math.min(size, start + MAX_COPY_PART) - 1;
      const number = this.parts.length + 1;
      const etag = await this.store.copyPart(this.key, this.uploadId, number, this.key, start, end);
      this.parts.push({ number, etag, size: end - start + 1 });
    }
    await this.store.deleteMany([this.key]);
    return undefined;
  }

  /** Sends what is pending as the next part (after making sure it may follow the last one). */
  private async flushPart(): Promise<void> {
    const body = Buffer.concat(this.pending, this.pendingSize);
    this.pending = [];
    this.pendingSize = 0;
    const holdsObject = this.objectHoldsPending;
    this.objectHoldsPending = false;
    const last = this.parts[this.parts.length - 1];
    if (last && last.size < this.store.minPart) {
      const size = sumParts(this.parts);
      await this.store.completeUpload(this.key, this.uploadId, this.parts);
      this.uploadId = await this.store.createUpload(this.key);
      this.parts = [];
      const head = await this.continueFromObject(size);
      if (head) {
        // The object is small: its bytes lead this part, and it goes once the part is stored.
        await this.sendPart(Buffer.concat([head, body]));
        await this.store.deleteMany([this.key]);
        return;
      }
    }
    await this.sendPart(body);
    if (holdsObject) await this.store.deleteMany([this.key]);
  }

  private async sendPart(body: Buffer): Promise<void> {
    const number = this.parts.length + 1;
    const etag = await this.store.uploadPart(this.key, this.uploadId, number, body);
    this.parts.push({ number, etag, size: body.length });
  }

  private async endStream(): Promise<void> {
    if (this.stream.writableFinished || this.stream.destroyed) return;
    await new Promise<void>((resolve, reject) => {
      this.stream.once("error", reject);
      this.stream.end(resolve);
    });
  }

  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.ending(async () => {
      await this.endStream();
      await this.sending;
      // Pending bytes that all came from the object are already persisted there.
      if (this.pendingSize > 0 && this.written > 0) await this.flushPart();
    });
  }

  async commit(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.ending(async () => {
      await this.endStream();
      await this.sending;
      if (this.pendingSize > 0 || this.parts.length === 0) await this.flushPart();
      await this.store.completeUpload(this.key, this.uploadId, this.parts);
    });
  }

  async cancel(): Promise<void> {
    this.done = true;
    this.stream.destroy();
    await this.sending.catch(() => undefined);
    await this.store.abortUpload(this.key, this.uploadId).catch((err: unknown) => {
      if (this.store.classify(err) !== "missing") throw err;
    });
    await this.store.deleteMany([this.key]);
  }
}
