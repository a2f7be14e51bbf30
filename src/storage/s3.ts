import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCopyCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  AbortMultipartUploadCommand,
  type ListObjectsV2CommandOutput,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { readFileSync } from "node:fs";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { Readable } from "node:stream";
import {
  checkPath,
  PathNotFoundError,
  StorageUnavailableError,
  type FileInfo,
  type FileWriter,
  type StorageDriver,
} from "./driver.js";
import { findUpload, listParts, listUploads, S3FileWriter, sumParts, type MultipartTarget } from "./s3-writer.js";

const MAX_PAGES = 100_000;
/** How long a presigned blob URL stays valid (distribution uses 20 minutes). */
const REDIRECT_SECONDS = 20 * 60;

/** storage.s3 as distribution documents it. */
export interface S3Options {
  accessKey?: string;
  secretKey?: string;
  sessionToken?: string;
  region: string;
  regionEndpoint?: string;
  forcePathStyle?: boolean;
  bucket: string;
  secure: boolean;
  skipVerify: boolean;
  chunkSize: number;
  rootDirectory: string;
  encrypt: boolean;
  keyId?: string;
  storageClass: string;
  multipartCopyChunkSize: number;
  multipartCopyMaxConcurrency: number;
  multipartCopyThresholdSize: number;
}

function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.$metadata?.httpStatusCode === 404 || e.name === "NoSuchKey" || e.name === "NotFound";
}

/** Failures the SDK already retried with backoff and that are the store's, not ours. */
function isUnavailable(err: unknown): boolean {
  const e = err as { $metadata?: { httpStatusCode?: number }; code?: string; name?: string; $retryable?: unknown };
  const status = e.$metadata?.httpStatusCode ?? 0;
  return (
    status >= 500 ||
    e.$retryable !== undefined ||
    ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EAI_AGAIN"].includes(e.code ?? "") ||
    e.name === "TimeoutError" ||
    e.name === "RequestTimeout"
  );
}

/** distribution's s3 driver, key for key: rootdirectory + path, without a leading "/". */
export function s3Key(rootDirectory: string, path: string): string {
  return `${rootDirectory.replace(/\/+$/, "")}${path}`.replace(/^\/+/, "");
}

export function createS3Client(options: S3Options): S3Client {
  // distribution's Go SDK honours AWS_CA_BUNDLE; the JS SDK does not, so the driver does.
  const caBundle = process.env.AWS_CA_BUNDLE;
  const agent = { keepAlive: true, maxSockets: 128 };
  const endpoint = options.regionEndpoint && !/^https?:\/\//.test(options.regionEndpoint)
    ? `${options.secure ? "https" : "http"}://${options.regionEndpoint}`
    : options.regionEndpoint;
  return new S3Client({
    region: options.region,
    ...(endpoint ? { endpoint } : {}),
    tls: options.secure,
    forcePathStyle: options.forcePathStyle ?? Boolean(options.regionEndpoint),
    ...(options.accessKey && options.secretKey
      ? { credentials: { accessKeyId: options.accessKey, secretAccessKey: options.secretKey, ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}) } }
      : {}),
    requestHandler: new NodeHttpHandler({
      httpAgent: new HttpAgent(agent),
      httpsAgent: new HttpsAgent({ ...agent, rejectUnauthorized: !options.skipVerify, ...(caBundle ? { ca: readFileSync(caBundle) } : {}) }),
      connectionTimeout: 10_000,
      requestTimeout: 120_000,
    }),
    // S3-compatible stores (Ceph RGW among them) refuse the SDK's default aws-chunked bodies
    // with trailing checksums; plain SigV4 with a known length works everywhere.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: 5,
  });
}

/** distribution's "s3" driver on @aws-sdk/client-s3: the same keys in the same bucket. */
export class S3Driver implements StorageDriver {
  readonly name = "s3";
  private readonly objectOptions: Record<string, string>;

  constructor(
    readonly options: S3Options,
    private readonly client: S3Client = createS3Client(options),
  ) {
    this.objectOptions = {
      ...(options.encrypt ? { ServerSideEncryption: options.keyId ? "aws:kms" : "AES256" } : {}),
      ...(options.encrypt && options.keyId ? { SSEKMSKeyId: options.keyId } : {}),
      ...(options.storageClass !== "NONE" ? { StorageClass: options.storageClass } : {}),
    };
  }

  private key(path: string): string {
    checkPath(path);
    return s3Key(this.options.rootDirectory, path);
  }

  private target(path: string): MultipartTarget {
    return {
      client: this.client,
      bucket: this.options.bucket,
      key: this.key(path),
      objectOptions: this.objectOptions,
      partSize: this.options.chunkSize,
    };
  }

  /** Runs a store call, turning "not found" into PathNotFoundError and outages into StorageUnavailableError. */
  private async call<T>(path: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isMissing(err)) throw new PathNotFoundError(path);
      if (isUnavailable(err)) throw new StorageUnavailableError(path, err);
      throw err;
    }
  }

  /** Fails with a clear message when the bucket is missing or the credentials are wrong. */
  async verify(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const why =
        status === 404 ? "does not exist" :
        status === 403 ? "is not accessible with these credentials (storage.s3.accesskey/secretkey)" :
        status === 400 ? "rejected the request (storage.s3.region?)" :
        `is not reachable: ${(err as Error).message}`;
      throw new Error(`s3 bucket ${JSON.stringify(this.options.bucket)} at ${this.options.regionEndpoint ?? `region ${this.options.region}`} ${why}`);
    }
  }

  async getContent(path: string): Promise<Buffer> {
    const Key = this.key(path);
    return this.call(path, async () => {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    });
  }

  async putContent(path: string, content: Buffer): Promise<void> {
    const Key = this.key(path);
    await this.call(path, () =>
      this.client.send(
        new PutObjectCommand({ Bucket: this.options.bucket, Key, Body: content, ContentLength: content.length, ...this.objectOptions }),
      ),
    );
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    const Key = this.key(path);
    if (end !== undefined && end <= offset) {
      await this.stat(path);
      return Readable.from([]);
    }
    const Range = offset > 0 || end !== undefined ? `bytes=${offset}-${end === undefined ? "" : end - 1}` : undefined;
    try {
      const res = await this.call(path, () => this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key, Range })));
      return res.Body as Readable;
    } catch (err) {
      // Reading from the very end of an object: S3 says 416, the contract says "no bytes".
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) return Readable.from([]);
      throw err;
    }
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    const target = this.target(path);
    return this.call(path, () => S3FileWriter.open(target, append));
  }

  async stat(path: string): Promise<FileInfo> {
    const target = this.target(path);
    return this.call(path, async () => {
      try {
        const head = await this.client.send(new HeadObjectCommand({ Bucket: target.bucket, Key: target.key }));
        return { path, size: head.ContentLength ?? 0, modTime: head.LastModified ?? new Date(0), isDir: false };
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: target.bucket, Prefix: `${target.key}/`, MaxKeys: 1 }));
      if ((page.KeyCount ?? 0) > 0) return { path, size: 0, modTime: new Date(0), isDir: true };
      const upload = await findUpload(target);
      if (upload) return { path, size: sumParts(await listParts(target, upload)), modTime: new Date(), isDir: false };
      throw new PathNotFoundError(path);
    });
  }

  private async *pages(path: string, prefix: string, delimiter?: string): AsyncGenerator<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    for (let i = 0; i < MAX_PAGES; i++) {
      const page = await this.call(path, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token })),
      );
      yield page;
      if (!page.IsTruncated) return;
      token = page.NextContinuationToken;
    }
  }

  async list(path: string): Promise<string[]> {
    const prefix = path === "/" ? this.key("/") : `${this.key(path)}/`;
    const base = path === "/" ? "" : path;
    const children: string[] = [];
    for await (const page of this.pages(path, prefix, "/")) {
      for (const p of page.CommonPrefixes ?? []) children.push(`${base}/${p.Prefix!.slice(prefix.length).replace(/\/$/, "")}`);
      for (const o of page.Contents ?? []) children.push(`${base}/${o.Key!.slice(prefix.length)}`);
    }
    if (children.length === 0) throw new PathNotFoundError(path);
    return children;
  }

  async move(source: string, destination: string): Promise<void> {
    const from = this.key(source);
    const to = this.key(destination);
    const { size } = await this.stat(source);
    await this.call(source, () => (size <= this.options.multipartCopyThresholdSize ? this.copyObject(from, to) : this.copyMultipart(from, to, size)));
    await this.delete(source);
  }

  private async copyObject(from: string, to: string): Promise<void> {
    await this.client.send(
      new CopyObjectCommand({ Bucket: this.options.bucket, Key: to, CopySource: this.copySource(from), ...this.objectOptions }),
    );
  }

  private copySource(key: string): string {
    return `${this.options.bucket}/${encodeURIComponent(key).replaceAll("%2F", "/")}`;
  }

  /** Large objects are copied in parallel ranges, as distribution does above multipartcopythresholdsize. */
  private async copyMultipart(from: string, to: string, size: number): Promise<void> {
    const { bucket, multipartCopyChunkSize: chunk, multipartCopyMaxConcurrency: concurrency } = this.options;
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: to, ...this.objectOptions }));
    const UploadId = created.UploadId!;
    const count = Math.ceil(size / chunk);
    const etags: string[] = new Array<string>(count);
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        const start = i * chunk;
        const end = Math.min(size, start + chunk) - 1;
        const res = await this.client.send(
          new UploadPartCopyCommand({ Bucket: bucket, Key: to, UploadId, PartNumber: i + 1, CopySource: this.copySource(from), CopySourceRange: `bytes=${start}-${end}` }),
        );
        etags[i] = res.CopyPartResult?.ETag ?? "";
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket, Key: to, UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      );
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: to, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  async delete(path: string): Promise<void> {
    const key = this.key(path);
    const keys: string[] = [];
    for await (const page of this.pages(path, key)) {
      for (const o of page.Contents ?? []) if (o.Key === key || o.Key!.startsWith(`${key}/`)) keys.push(o.Key!);
    }
    const uploads = (await this.call(path, () => listUploads(this.client, this.options.bucket, key))).filter(
      (u) => u.key === key || u.key.startsWith(`${key}/`),
    );
    if (keys.length === 0 && uploads.length === 0) throw new PathNotFoundError(path);
    for (let i = 0; i < keys.length; i += 1000) {
      const Objects = keys.slice(i, i + 1000).map((Key) => ({ Key }));
      await this.call(path, () => this.client.send(new DeleteObjectsCommand({ Bucket: this.options.bucket, Delete: { Objects, Quiet: true } })));
    }
    for (const u of uploads) {
      await this.call(path, () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.options.bucket, Key: u.key, UploadId: u.id }))).catch(
        () => undefined,
      );
    }
  }

  async redirectURL(path: string): Promise<string | undefined> {
    const Key = this.key(path);
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.options.bucket, Key }), { expiresIn: REDIRECT_SECONDS });
  }
}

