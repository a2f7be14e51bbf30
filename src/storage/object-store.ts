import type { Readable } from "node:stream";

export interface StoredObject {
  size: number;
  modTime: Date;
}

export interface ListedObject extends StoredObject {
  key: string;
}

export interface ListPage {
  /** Objects directly matched by the prefix (and delimiter). */
  objects: ListedObject[];
  /** Common prefixes, ending with the delimiter. */
  prefixes: string[];
  /** Continuation for the next page; absent on the last one. */
  next?: string;
}

export interface UploadRef {
  key: string;
  id: string;
  initiated: Date;
}

export interface PartInfo {
  number: number;
  etag: string;
  size: number;
}

export type ErrorKind = "missing" | "unavailable" | "other";

/**
 * What the object-store drivers need of a bucket: S3 and OSS speak it with different SDKs and
 * signatures but the same semantics (objects, prefix listings, multipart uploads with part
 * copy, presigned GETs). Keys are the store's own, already under rootdirectory.
 */
export interface ObjectStore {
  readonly name: string;
  /** The smallest part the store accepts, except as the last part of an upload. */
  readonly minPart: number;
  head(key: string): Promise<StoredObject | undefined>;
  /** Bytes [start, end) of an object; throws an error classify() calls "missing" when absent. */
  read(key: string, start: number, end: number | undefined): Promise<Readable>;
  readAll(key: string): Promise<Buffer | undefined>;
  write(key: string, content: Buffer): Promise<void>;
  list(prefix: string, delimiter: string | undefined, token: string | undefined): Promise<ListPage>;
  copy(from: string, to: string): Promise<void>;
  /** Deletes up to 1000 keys. */
  deleteMany(keys: string[]): Promise<void>;
  createUpload(key: string): Promise<string>;
  uploadPart(key: string, uploadId: string, number: number, body: Buffer): Promise<string>;
  /** Copies bytes [start, end] (inclusive) of `source` as a part. */
  copyPart(key: string, uploadId: string, number: number, source: string, start: number, end: number): Promise<string>;
  completeUpload(key: string, uploadId: string, parts: PartInfo[]): Promise<void>;
  abortUpload(key: string, uploadId: string): Promise<void>;
  /** Unfinished uploads whose keys start with `prefix`. */
  listUploads(prefix: string): Promise<UploadRef[]>;
  listParts(key: string, uploadId: string): Promise<PartInfo[]>;
  presign(key: string, seconds: number): Promise<string>;
  /** Checks bucket and credentials, failing with a message an operator can act on. */
  verify(): Promise<void>;
  classify(err: unknown): ErrorKind;
}

/** S3's smallest part, except the last one of an upload. */
export const S3_MIN_PART = 5 * 1024 * 1024;
/** OSS's smallest part, except the last one of an upload. */
export const OSS_MIN_PART = 100 * 1024;

/** Bounds on listing loops, so a misbehaving store cannot spin a request forever. */
export const MAX_PAGES = 100_000;

/**
 * Runs an idempotent store call, retrying transient failures with exponential backoff and
 * jitter, for clients that do not retry on their own.
 */
export async function withRetries<T>(fn: () => Promise<T>, transient: (err: unknown) => boolean, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || !transient(err)) throw err;
      const delay = Math.min(2000, 100 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
