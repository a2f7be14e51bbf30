import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Writable } from "node:stream";
import type { FileWriter } from "./driver.js";

/** S3's smallest part, except the last one of an upload. */
export const MIN_PART = 5 * 1024 * 1024;
/** S3's largest single copy (UploadPartCopy source range). */
const MAX_COPY_PART = 5 * 1024 * 1024 * 1024;
/** Bounds on listing loops, so a misbehaving store cannot spin a request forever. */
const MAX_PAGES = 10_000;

interface Part {
  PartNumber: number;
  ETag: string;
  Size: number;
}

/** What a writer needs from the driver: the client, where, and the options new objects get. */
export interface MultipartTarget {
  client: S3Client;
  bucket: string;
  key: string;
  /** ServerSideEncryption, SSEKMSKeyId, StorageClass for CreateMultipartUpload */
  objectOptions: Record<string, string>;
  /** Where the object's bytes are buffered into parts (chunksize). */
  partSize: number;
}

function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.$metadata?.httpStatusCode === 404 || e.name === "NoSuchKey" || e.name === "NotFound" || e.name === "NoSuchUpload";
}

export async function objectSize(target: MultipartTarget): Promise<number | undefined> {
  try {
    const head = await target.client.send(new HeadObjectCommand({ Bucket: target.bucket, Key: target.key }));
    return head.ContentLength ?? 0;
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** The newest unfinished multipart upload of exactly this key. */
export async function findUpload(target: MultipartTarget): Promise<string | undefined> {
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  let newest: { id: string; initiated: number } | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await target.client.send(
      new ListMultipartUploadsCommand({ Bucket: target.bucket, Prefix: target.key, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
    );
    for (const upload of res.Uploads ?? []) {
      if (upload.Key !== target.key || !upload.UploadId) continue;
      const initiated = upload.Initiated?.getTime() ?? 0;
      if (!newest || initiated >= newest.initiated) newest = { id: upload.UploadId, initiated };
    }
    if (!res.IsTruncated) break;
    keyMarker = res.NextKeyMarker;
    uploadIdMarker = res.NextUploadIdMarker;
  }
  return newest?.id;
}

/** Every unfinished multipart upload whose key starts with `prefix`. */
export async function listUploads(client: S3Client, bucket: string, prefix: string): Promise<Array<{ key: string; id: string }>> {
  const out: Array<{ key: string; id: string }> = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
    for (const u of res.Uploads ?? []) if (u.Key && u.UploadId) out.push({ key: u.Key, id: u.UploadId });
    if (!res.IsTruncated) break;
    keyMarker = res.NextKeyMarker;
    uploadIdMarker = res.NextUploadIdMarker;
  }
  return out;
}

export async function listParts(target: MultipartTarget, uploadId: string): Promise<Part[]> {
  const parts: Part[] = [];
  let marker: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await target.client.send(
      new ListPartsCommand({ Bucket: target.bucket, Key: target.key, UploadId: uploadId, PartNumberMarker: marker }),
    );
    for (const p of res.Parts ?? []) parts.push({ PartNumber: p.PartNumber ?? 0, ETag: p.ETag ?? "", Size: p.Size ?? 0 });
    if (!res.IsTruncated) break;
    marker = res.NextPartNumberMarker;
  }
  return parts.sort((a, b) => a.PartNumber - b.PartNumber);
}

export function sumParts(parts: Part[]): number {
  return parts.reduce((sum, p) => sum + p.Size, 0);
}

/**
 * A resumable writer on an S3 multipart upload, the way distribution's s3 driver keeps one:
 * the upload's parts are the state, so any instance can continue it. Bytes are buffered up to
 * one part (chunksize) and sent as it fills; nothing holds a whole blob.
 *
 * S3 refuses a part under 5 MiB unless it is the last, but close() must persist whatever
 * arrived. When more data follows such a small part, the upload is completed into the object,
 * a new upload starts from it (server-side copy, or a download when under 5 MiB), and the
 * interim object is deleted once its bytes are safely in the new upload.
 */
export class S3FileWriter implements FileWriter {
  readonly stream: Writable;
  private pending: Buffer[] = [];
  private pendingSize = 0;
  private written = 0;
  /** The object at the key holds bytes the upload has not taken into a part yet. */
  private objectHoldsPending = false;
  private done = false;

  private constructor(
    private readonly target: MultipartTarget,
    private uploadId: string,
    private parts: Part[],
    readonly startSize: number,
  ) {
    this.stream = new Writable({
      highWaterMark: 1024 * 1024,
      write: (chunk: Buffer, _encoding, callback) => {
        this.pending.push(chunk);
        this.pendingSize += chunk.length;
        this.written += chunk.length;
        if (this.pendingSize < target.partSize) return callback();
        this.flushPart().then(() => callback(), callback);
      },
    });
  }

  static async open(target: MultipartTarget, append: boolean): Promise<S3FileWriter> {
    const { client, bucket, key } = target;
    if (!append) {
      for (const upload of await listUploads(client, bucket, key)) {
        if (upload.key === key) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: upload.id }));
      }
      return new S3FileWriter(target, await S3FileWriter.create(target), [], 0);
    }
    const existing = await findUpload(target);
    const parts = existing ? await listParts(target, existing) : [];
    if (existing && parts.length > 0) {
      // An object beside a started upload is the interim one of a restart: its bytes are in part 1.
      if ((await objectSize(target)) !== undefined) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      return new S3FileWriter(target, existing, parts, sumParts(parts));
    }
    const writer = new S3FileWriter(target, existing ?? (await S3FileWriter.create(target)), [], (await objectSize(target)) ?? 0);
    if (writer.startSize > 0) await writer.continueFromObject(writer.startSize);
    return writer;
  }

  private static async create(target: MultipartTarget): Promise<string> {
    const res = await target.client.send(
      new CreateMultipartUploadCommand({ Bucket: target.bucket, Key: target.key, ...target.objectOptions }),
    );
    if (!res.UploadId) throw new Error(`no upload id for ${target.key}`);
    return res.UploadId;
  }

  size(): number {
    return this.startSize + this.written;
  }

  /** Takes the object now at the key as the start of the (new, empty) upload. */
  private async continueFromObject(size: number): Promise<void> {
    const { client, bucket, key } = this.target;
    if (size < MIN_PART) {
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const head = Buffer.from(await res.Body!.transformToByteArray());
      this.pending.unshift(head);
      this.pendingSize += head.length;
      this.objectHoldsPending = true;
      return;
    }
    const source = `${bucket}/${encodeURIComponent(key).replaceAll("%2F", "/")}`;
    for (let start = 0; start < size; start += MAX_COPY_PART) {
      const end = Math.min(size, start + MAX_COPY_PART) - 1;
      const PartNumber = this.parts.length + 1;
      const res = await client.send(
        new UploadPartCopyCommand({
          Bucket: bucket, Key: key, UploadId: this.uploadId, PartNumber, CopySource: source, CopySourceRange: `bytes=${start}-${end}`,
        }),
      );
      this.parts.push({ PartNumber, ETag: res.CopyPartResult?.ETag ?? "", Size: end - start + 1 });
    }
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }

  private async complete(): Promise<void> {
    await this.target.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.target.bucket,
        Key: this.target.key,
        UploadId: this.uploadId,
        MultipartUpload: { Parts: this.parts.map(({ PartNumber, ETag }) => ({ PartNumber, ETag })) },
      }),
    );
  }

  /** Sends what is pending as the next part (after making sure it may follow the last one). */
  private async flushPart(): Promise<void> {
    const last = this.parts[this.parts.length - 1];
    if (last && last.Size < MIN_PART) {
      const size = sumParts(this.parts);
      await this.complete();
      this.uploadId = await S3FileWriter.create(this.target);
      this.parts = [];
      await this.continueFromObject(size);
    }
    const body = Buffer.concat(this.pending, this.pendingSize);
    const PartNumber = this.parts.length + 1;
    const res = await this.target.client.send(
      new UploadPartCommand({
        Bucket: this.target.bucket, Key: this.target.key, UploadId: this.uploadId, PartNumber, Body: body, ContentLength: body.length,
      }),
    );
    this.parts.push({ PartNumber, ETag: res.ETag ?? "", Size: body.length });
    this.pending = [];
    this.pendingSize = 0;
    if (this.objectHoldsPending) {
      this.objectHoldsPending = false;
      await this.target.client.send(new DeleteObjectCommand({ Bucket: this.target.bucket, Key: this.target.key }));
    }
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
    await this.endStream();
    // Pending bytes that all came from the object are already persisted there.
    if (this.pendingSize > 0 && this.written > 0) await this.flushPart();
  }

  async commit(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.endStream();
    if (this.pendingSize > 0 || this.parts.length === 0) await this.flushPart();
    await this.complete();
  }

  async cancel(): Promise<void> {
    this.done = true;
    this.stream.destroy();
    const { client, bucket, key } = this.target;
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: this.uploadId })).catch((err: unknown) => {
      if (!isMissing(err)) throw err;
    });
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }
}
