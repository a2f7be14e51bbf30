import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { readFileSync } from "node:fs";
import { ConfigError, NotYetAvailable } from "../refusal.js";
import { http, https } from "../builtins.js";
import type { Readable } from "node:stream";
import { MAX_PAGES, S3_MIN_PART, type ErrorKind, type ListPage, type ObjectStore, type PartInfo, type StoredObject, type UploadRef } from "./object-store.js";

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


function status(err: unknown): number {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0;
}

function readCaBundle(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError("AWS_CA_BUNDLE", `AWS_CA_BUNDLE=${path} cannot be read: ${(err as Error).message}`);
  }
}

export function createS3Client(options: S3Options): S3Client {
  // distribution's Go SDK honours AWS_CA_BUNDLE; the JS SDK does not, so the driver does.
  const caBundle = process.env.AWS_CA_BUNDLE ? readCaBundle(process.env.AWS_CA_BUNDLE) : undefined;
  const agent = { keepAlive: true, maxSockets: 128 };
  const endpoint =
    options.regionEndpoint && !/^https?:\/\//.test(options.regionEndpoint)
      ? `${options.secure ? "https" : "http"}://${options.regionEndpoint}`
      : options.regionEndpoint;
  return new S3Client({
    region: options.region,
    ...(endpoint ? { endpoint } : {}),
    tls: options.secure,
    forcePathStyle: options.forcePathStyle ?? Boolean(options.regionEndpoint),
    ...(options.accessKey && options.secretKey
      ? {
          credentials: {
            accessKeyId: options.accessKey,
            secretAccessKey: options.secretKey,
            ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}),
          },
        }
      : {}),
    requestHandler: new NodeHttpHandler({
      httpAgent: new http.Agent(agent),
      httpsAgent: new (https().Agent)({ ...agent, rejectUnauthorized: !options.skipVerify, ...(caBundle ? { ca: caBundle } : {}) }),
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

/** A bucket spoken to with @aws-sdk/client-s3 (AWS, Ceph RGW, MinIO and other S3 stores). */
export class S3Store implements ObjectStore {
  readonly name = "s3";
  readonly minPart = S3_MIN_PART;
  private readonly bucket: string;
  private readonly objectOptions: Record<string, string>;

  constructor(
    readonly options: S3Options,
    private readonly client: S3Client = createS3Client(options),
  ) {
    this.bucket = options.bucket;
    this.objectOptions = {
      ...(options.encrypt ? { ServerSideEncryption: options.keyId ? "aws:kms" : "AES256" } : {}),
      ...(options.encrypt && options.keyId ? { SSEKMSKeyId: options.keyId } : {}),
      ...(options.storageClass !== "NONE" ? { StorageClass: options.storageClass } : {}),
    };
  }

  classify(err: unknown): ErrorKind {
    const e = err as { name?: string; code?: string; $retryable?: unknown };
    if (status(err) === 404 || e.name === "NoSuchKey" || e.name === "NotFound" || e.name === "NoSuchUpload") return "missing";
    const network = ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EAI_AGAIN"].includes(e.code ?? "");
    return status(err) >= 500 || e.$retryable !== undefined || network || e.name === "TimeoutError" ? "unavailable" : "other";
  }

  async verify(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const code = status(err);
      const [key, why] =
        code === 404 ? ["bucket", "does not exist"] :
        code === 403 ? ["accesskey", "is not accessible with these credentials (storage.s3.accesskey/secretkey)"] :
        code === 400 ? ["region", "rejected the request (storage.s3.region?)"] :
        [this.options.regionEndpoint ? "regionendpoint" : "region", `is not reachable: ${(err as Error).message}`];
      const Refusal = this.classify(err) === "unavailable" ? NotYetAvailable : ConfigError;
      throw new Refusal(`storage.s3.${key}`, `s3 bucket ${JSON.stringify(this.bucket)} at ${this.options.regionEndpoint ?? `region ${this.options.region}`} ${why}`);
    }
  }

  async head(key: string): Promise<StoredObject | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: head.ContentLength ?? 0, modTime: head.LastModified ?? new Date(0) };
    } catch (err) {
      if (this.classify(err) === "missing") return undefined;
      throw err;
    }
  }

  async read(key: string, start: number, end: number | undefined): Promise<Readable> {
    const Range = start > 0 || end !== undefined ? `bytes=${start}-${end === undefined ? "" : end - 1}` : undefined;
    const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range }));
    return res.Body as Readable;
  }

  async readAll(key: string): Promise<Buffer | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      if (this.classify(err) === "missing") return undefined;
      throw err;
    }
  }

  async write(key: string, content: Buffer): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: content, ContentLength: content.length, ...this.objectOptions }));
  }

  async list(prefix: string, delimiter: string | undefined, token: string | undefined): Promise<ListPage> {
    const res = await this.client.send(
      new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token }),
    );
    return {
      objects: (res.Contents ?? []).map((o) => ({ key: o.Key!, size: o.Size ?? 0, modTime: o.LastModified ?? new Date(0) })),
      prefixes: (res.CommonPrefixes ?? []).map((p) => p.Prefix!),
      ...(res.IsTruncated && res.NextContinuationToken ? { next: res.NextContinuationToken } : {}),
    };
  }

  private copySource(key: string): string {
    return `${this.bucket}/${encodeURIComponent(key).replaceAll("%2F", "/")}`;
  }

  async copy(from: string, to: string): Promise<void> {
    await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: this.copySource(from), ...this.objectOptions }));
  }

  async deleteMany(keys: string[]): Promise<void> {
    const res = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }));
    // A quiet DeleteObjects answers 200 and lists only the keys it could not delete.
    const failed = res.Errors?.[0];
    if (failed) throw new Error(`deleting ${failed.Key ?? "?"}: ${failed.Code ?? ""} ${failed.Message ?? ""} (${res.Errors?.length ?? 0} keys not deleted)`);
  }

  async createUpload(key: string): Promise<string> {
    const res = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ...this.objectOptions }));
    if (!res.UploadId) throw new Error(`no upload id for ${key}`);
    return res.UploadId;
  }

  async uploadPart(key: string, uploadId: string, number: number, body: Buffer): Promise<string> {
    const res = await this.client.send(
      new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: number, Body: body, ContentLength: body.length }),
    );
    return res.ETag ?? "";
  }

  async copyPart(key: string, uploadId: string, number: number, source: string, start: number, end: number): Promise<string> {
    const res = await this.client.send(
      new UploadPartCopyCommand({
        Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: number, CopySource: this.copySource(source), CopySourceRange: `bytes=${start}-${end}`,
      }),
    );
    return res.CopyPartResult?.ETag ?? "";
  }

  async completeUpload(key: string, uploadId: string, parts: PartInfo[]): Promise<void> {
    // Ceph RGW answers with an empty ETag here; nothing depends on it.
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.number, ETag: p.etag })) },
      }),
    );
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
  }

  async listUploads(prefix: string): Promise<UploadRef[]> {
    const out: UploadRef[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const res = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      );
      for (const u of res.Uploads ?? []) if (u.Key && u.UploadId) out.push({ key: u.Key, id: u.UploadId, initiated: u.Initiated ?? new Date(0) });
      if (!res.IsTruncated) break;
      keyMarker = res.NextKeyMarker;
      uploadIdMarker = res.NextUploadIdMarker;
    }
    return out;
  }

  async listParts(key: string, uploadId: string): Promise<PartInfo[]> {
    const parts: PartInfo[] = [];
    let marker: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const res = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }));
      for (const p of res.Parts ?? []) parts.push({ number: p.PartNumber ?? 0, etag: p.ETag ?? "", size: p.Size ?? 0 });
      if (!res.IsTruncated) break;
      marker = res.NextPartNumberMarker;
    }
    return parts.sort((a, b) => a.number - b.number);
  }

  presign(key: string, seconds: number): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: seconds });
  }
}
