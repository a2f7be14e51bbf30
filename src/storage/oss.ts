import { ConfigError, NotYetAvailable } from "../refusal.js";
import OSS from "ali-oss";
import type { Readable } from "node:stream";
import { MAX_PAGES, OSS_MIN_PART, withRetries, type ErrorKind, type ListPage, type ObjectStore, type PartInfo, type StoredObject, type UploadRef } from "./object-store.js";

/** storage.oss as the LAIN registry README documents it (distribution's oss driver). */
export interface OssOptions {
  accessKeyId: string;
  accessKeySecret: string;
  region: string;
  /** A custom endpoint (host, or URL with scheme) instead of the region's. */
  endpoint?: string;
  /** Use the region's internal (VPC) endpoint. */
  internal: boolean;
  /** The endpoint is the bucket's own domain (a CNAME, or a proxy in front of one bucket). */
  cname: boolean;
  bucket: string;
  encrypt: boolean;
  secure: boolean;
  chunkSize: number;
  rootDirectory: string;
}


interface RawPartsPage {
  parts?: RawPart | RawPart[];
  isTruncated?: string | boolean;
  nextPartNumberMarker?: string | number;
}

interface RawPart {
  PartNumber: string;
  ETag: string;
  Size: string;
}

interface OssError {
  status?: number;
  code?: string;
  name?: string;
}

/** A bucket of Alibaba Cloud OSS, spoken to with ali-oss (OSS signatures, virtual-hosted URLs). */
export class OssStore implements ObjectStore {
  readonly name = "oss";
  readonly minPart = OSS_MIN_PART;
  private readonly client: OSS;
  private readonly encryption: Record<string, string>;

  constructor(readonly options: OssOptions) {
    this.client = new OSS({
      region: options.region,
      accessKeyId: options.accessKeyId,
      accessKeySecret: options.accessKeySecret,
      bucket: options.bucket,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      internal: options.internal,
      cname: options.cname,
      secure: options.secure,
      timeout: 120_000,
    });
    this.encryption = options.encrypt ? { "x-oss-server-side-encryption": "AES256" } : {};
  }

  /** Every call to OSS is idempotent here; ali-oss retries neither stream bodies nor 5xx. */
  private send<T>(fn: (client: OSS) => Promise<T>): Promise<T> {
    return withRetries(() => fn(this.client), (err) => this.classify(err) === "unavailable");
  }

  /** Headers for a new object. A fresh object every time: ali-oss writes into the one it gets. */
  private objectHeaders(): Record<string, string> {
    return { ...this.encryption };
  }

  classify(err: unknown): ErrorKind {
    const e = err as OssError;
    if (e.status === 404 || e.code === "NoSuchKey" || e.code === "NoSuchUpload") return "missing";
    const transient = ["ConnectionTimeoutError", "ResponseTimeoutError", "RequestError", "ResponseError"].includes(e.name ?? "");
    return (e.status ?? 0) >= 500 || transient || e.status === -1 ? "unavailable" : "other";
  }

  async verify(): Promise<void> {
    try {
      await this.send((c) => c.list({ "max-keys": 1 }, {}));
    } catch (err) {
      const e = err as OssError;
      const [key, why, Refusal] =
        e.code === "NoSuchBucket" || e.status === 404 ? ["bucket", "does not exist", ConfigError] :
        e.status === 403 ? ["accesskeyid", `is not accessible with these credentials (storage.oss.accesskeyid/accesskeysecret): ${e.code ?? ""}`, ConfigError] :
        [this.options.endpoint ? "endpoint" : "region", `is not reachable: ${(err as Error).message}`, NotYetAvailable];
      throw new Refusal(`storage.oss.${key}`, `oss bucket ${JSON.stringify(this.options.bucket)} at ${this.options.endpoint ?? this.options.region} ${why}`);
    }
  }

  async head(key: string): Promise<StoredObject | undefined> {
    try {
      const { res } = await this.send((c) => c.head(key));
      const headers = res.headers as Record<string, string>;
      return { size: Number(headers["content-length"] ?? 0), modTime: new Date(headers["last-modified"] ?? 0) };
    } catch (err) {
      if (this.classify(err) === "missing") return undefined;
      throw err;
    }
  }

  async read(key: string, start: number, end: number | undefined): Promise<Readable> {
    const headers = start > 0 || end !== undefined ? { Range: `bytes=${start}-${end === undefined ? "" : end - 1}` } : {};
    const { stream } = await this.send((c) => c.getStream(key, { headers }));
    return stream as Readable;
  }

  async readAll(key: string): Promise<Buffer | undefined> {
    try {
      const { content } = await this.send((c) => c.get(key));
      return Buffer.from(content as Buffer);
    } catch (err) {
      if (this.classify(err) === "missing") return undefined;
      throw err;
    }
  }

  async write(key: string, content: Buffer): Promise<void> {
    await this.send((c) => c.put(key, content, { headers: this.objectHeaders() }));
  }

  async list(prefix: string, delimiter: string | undefined, token: string | undefined): Promise<ListPage> {
    const res = await this.send((c) =>
      c.list({ prefix, "max-keys": 1000, ...(delimiter ? { delimiter } : {}), ...(token ? { marker: token } : {}) }, {}),
    );
    return {
      objects: (res.objects ?? []).map((o) => ({ key: o.name, size: o.size, modTime: new Date(o.lastModified) })),
      prefixes: res.prefixes ?? [],
      ...(res.isTruncated && res.nextMarker ? { next: res.nextMarker } : {}),
    };
  }

  async copy(from: string, to: string): Promise<void> {
    await this.send((c) => c.copy(to, from, { headers: this.objectHeaders() }));
  }

  async deleteMany(keys: string[]): Promise<void> {
    await this.send((c) => c.deleteMulti(keys, { quiet: true }));
  }

  async createUpload(key: string): Promise<string> {
    const { uploadId } = await this.send((c) => c.initMultipartUpload(key, { headers: this.objectHeaders() }));
    return uploadId;
  }

  async uploadPart(key: string, uploadId: string, number: number, body: Buffer): Promise<string> {
    const { etag } = await this.send((c) => c.uploadPart(key, uploadId, number, body, 0, body.length, {}));
    return etag;
  }

  async copyPart(key: string, uploadId: string, number: number, source: string, start: number, end: number): Promise<string> {
    const { etag } = await this.send((c) =>
      c.uploadPartCopy(key, uploadId, number, `${start}-${end}`, { sourceKey: source, sourceBucketName: this.options.bucket }, {}),
    );
    return etag;
  }

  async completeUpload(key: string, uploadId: string, parts: PartInfo[]): Promise<void> {
    await this.send((c) => c.completeMultipartUpload(key, uploadId, parts.map((p) => ({ number: p.number, etag: p.etag }))));
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    await this.send((c) => c.abortMultipartUpload(key, uploadId));
  }

  async listUploads(prefix: string): Promise<UploadRef[]> {
    const out: UploadRef[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const query = {
        prefix,
        "max-uploads": 1000,
        ...(keyMarker ? { "key-marker": keyMarker } : {}),
        ...(uploadIdMarker ? { "upload-id-marker": uploadIdMarker } : {}),
      };
      const res = await this.send((c) => c.listUploads(query));
      for (const u of res.uploads ?? []) out.push({ key: u.name, id: u.uploadId, initiated: new Date(u.initiated) });
      if (!res.isTruncated) break;
      keyMarker = res.nextKeyMarker;
      uploadIdMarker = res.nextUploadIdMarker;
    }
    return out;
  }

  async listParts(key: string, uploadId: string): Promise<PartInfo[]> {
    const parts: PartInfo[] = [];
    let marker: number | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const query = { "max-parts": 1000, ...(marker ? { "part-number-marker": marker } : {}) } as OSS.ListPartsQuery;
      // ali-oss hands back the XML as parsed (strings, and a lone part not in a list), not as typed.
      const res = (await this.send((c) => c.listParts(key, uploadId, query))) as unknown as RawPartsPage;
      const found = res.parts === undefined ? [] : Array.isArray(res.parts) ? res.parts : [res.parts];
      for (const p of found) parts.push({ number: Number(p.PartNumber), etag: p.ETag, size: Number(p.Size) });
      if (String(res.isTruncated) !== "true") break;
      marker = Number(res.nextPartNumberMarker);
    }
    return parts.sort((a, b) => a.number - b.number);
  }

  async presign(key: string, seconds: number): Promise<string> {
    return this.client.signatureUrl(key, { expires: seconds });
  }
}
