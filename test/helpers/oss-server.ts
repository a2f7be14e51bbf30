import type { OssOptions } from "../../src/storage/oss.js";
import { createHash, createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/**
 * A small Alibaba Cloud OSS server for tests, since no OSS emulator exists: one bucket in
 * memory, the object, listing and multipart calls the oss driver makes, and the OSS request
 * signature (header "OSS id:sig" and presigned query) checked on every request, so a client
 * that signs wrongly is refused exactly as OSS would refuse it.
 *
 * Like OSS reached through an IP endpoint (ali-oss does not put the bucket in the host or path
 * then), every request addresses the one bucket; the bucket's name is part of what is signed.
 */
export interface OssServerOptions {
  bucket: string;
  accessKeyId: string;
  accessKeySecret: string;
}

interface StoredObject {
  data: Buffer;
  etag: string;
  modified: Date;
}

interface Upload {
  key: string;
  initiated: Date;
  parts: Map<number, StoredObject>;
}

/** OSS's sub-resources: query parameters that are part of the signed resource. */
const SUBRESOURCES = new Set([
  "acl", "uploads", "location", "cors", "logging", "website", "referer", "lifecycle", "delete", "append", "tagging",
  "objectMeta", "uploadId", "partNumber", "security-token", "position", "symlink", "restore", "versioning", "versionId",
  "response-content-type", "response-content-language", "response-expires", "response-cache-control",
  "response-content-disposition", "response-content-encoding", "x-oss-process", "bucketInfo",
]);
const MIN_PART = 100 * 1024;
const MAX_SKEW_MS = 15 * 60_000;

class OssError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function xml(value: string | number | boolean | Date): string {
  const text = value instanceof Date ? value.toISOString() : String(value);
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

function etagOf(data: Buffer): string {
  return `"${createHash("md5").update(data).digest("hex").toUpperCase()}"`;
}

export class OssTestServer {
  private readonly objects = new Map<string, StoredObject>();
  private readonly uploads = new Map<string, Upload>();
  /** Requests refused for their signature, so tests can see the check at work. */
  rejected = 0;
  /** The next requests to answer 503, as an overloaded OSS does. */
  failNext = 0;

  private constructor(
    private readonly options: OssServerOptions,
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(options: OssServerOptions): Promise<OssTestServer> {
    let self: OssTestServer | undefined;
    const server = createServer((req, res) => void self?.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    self = new OssTestServer(options, server, `http://127.0.0.1:${port}`);
    return self;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Keys of stored objects (for tests that check the layout). */
  keys(): string[] {
    return [...this.objects.keys()].sort();
  }

  pendingUploads(): number {
    return this.uploads.size;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? "/", "http://oss.invalid");
      const key = decodeURIComponent(url.pathname.slice(1));
      if (this.failNext > 0) {
        this.failNext--;
        throw new OssError(503, "ServiceUnavailable", "Please reduce your request rate.");
      }
      this.authenticate(req, url, key, body);
      this.route(req, res, url, key, body);
    } catch (err) {
      const e = err instanceof OssError ? err : new OssError(500, "InternalError", (err as Error).message);
      const requestId = randomUUID();
      res.statusCode = e.status;
      res.setHeader("x-oss-request-id", requestId);
      if (req.method === "HEAD") return void res.end();
      res.setHeader("Content-Type", "application/xml");
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.code}</Code><Message>${xml(e.message)}</Message><RequestId>${requestId}</RequestId><HostId>127.0.0.1</HostId></Error>`,
      );
    }
  }

  /** The canonicalized resource: /bucket/key plus the signed sub-resources, sorted. */
  private resource(url: URL, key: string): string {
    const subresources = [...url.searchParams.entries()]
      .filter(([name]) => SUBRESOURCES.has(name))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => (value === "" ? name : `${name}=${value}`));
    const path = `/${this.options.bucket}/${key}`;
    return subresources.length ? `${path}?${subresources.join("&")}` : path;
  }

  private authenticate(req: IncomingMessage, url: URL, key: string, body: Buffer): void {
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(",") : (value ?? "");
    };
    const presigned = url.searchParams.get("Signature");
    let id: string;
    let signature: string;
    let when: string;
    if (presigned !== null) {
      id = url.searchParams.get("OSSAccessKeyId") ?? "";
      signature = presigned;
      when = url.searchParams.get("Expires") ?? "";
      if (!(Number(when) * 1000 > Date.now())) throw new OssError(403, "AccessDenied", "Request has expired.");
    } else {
      const match = /^OSS ([^:]+):(.+)$/.exec(header("authorization"));
      if (!match) throw new OssError(403, "AccessDenied", "You have no right to access this object (anonymous).");
      [, id = "", signature = ""] = match;
      when = header("x-oss-date") || header("date");
      const date = Date.parse(when);
      if (!Number.isFinite(date) || Math.abs(date - Date.now()) > MAX_SKEW_MS) {
        throw new OssError(403, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.");
      }
      const md5 = header("content-md5");
      if (md5 && md5 !== createHash("md5").update(body).digest("base64")) {
        throw new OssError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.");
      }
    }
    if (id !== this.options.accessKeyId) {
      this.rejected++;
      throw new OssError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.");
    }
    const ossHeaders = Object.keys(req.headers)
      .filter((name) => name.startsWith("x-oss-"))
      .sort()
      .map((name) => `${name}:${header(name).trim()}`);
    const stringToSign = [
      req.method ?? "GET",
      presigned !== null ? "" : header("content-md5"),
      presigned !== null ? "" : header("content-type"),
      when,
      ...(presigned !== null ? [] : ossHeaders),
      this.resource(url, key),
    ].join("\n");
    const expected = createHmac("sha1", this.options.accessKeySecret).update(stringToSign).digest();
    const given = Buffer.from(signature, "base64");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      this.rejected++;
      throw new OssError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.");
    }
  }

  private object(key: string): StoredObject {
    const found = this.objects.get(key);
    if (!found) throw new OssError(404, "NoSuchKey", "The specified key does not exist.");
    return found;
  }

  private upload(id: string | null): Upload {
    const found = id === null ? undefined : this.uploads.get(id);
    if (!found) throw new OssError(404, "NoSuchUpload", "The specified upload does not exist.");
    return found;
  }

  /** x-oss-copy-source: /bucket/url-encoded-key, of this bucket. */
  private copySource(req: IncomingMessage): StoredObject {
    const source = String(req.headers["x-oss-copy-source"]);
    const prefix = `/${this.options.bucket}/`;
    if (!source.startsWith(prefix)) throw new OssError(403, "AccessDenied", `copy source ${source} is not in this bucket`);
    return this.object(decodeURIComponent(source.slice(prefix.length)));
  }

  private sendXml(res: ServerResponse, body: string, headers: Record<string, string> = {}): void {
    res.statusCode = 200;
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.setHeader("Content-Type", "application/xml");
    res.setHeader("x-oss-request-id", randomUUID());
    res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
  }

  private route(req: IncomingMessage, res: ServerResponse, url: URL, key: string, body: Buffer): void {
    const q = url.searchParams;
    const method = req.method ?? "GET";
    if (key === "") {
      if (method === "GET" && q.has("uploads")) return this.listUploads(res, q);
      if (method === "GET") return this.listObjects(res, q);
      if (method === "POST" && q.has("delete")) return this.deleteMultiple(res, body);
      throw new OssError(405, "MethodNotAllowed", `${method} on the bucket`);
    }
    const uploadId = q.get("uploadId");
    if (method === "POST" && q.has("uploads")) {
      const id = randomUUID().replaceAll("-", "").toUpperCase();
      this.uploads.set(id, { key, initiated: new Date(), parts: new Map() });
      return this.sendXml(res, `<InitiateMultipartUploadResult><Bucket>${xml(this.options.bucket)}</Bucket><Key>${xml(key)}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`);
    }
    if (method === "PUT" && uploadId !== null) {
      const upload = this.upload(uploadId);
      const number = Number(q.get("partNumber"));
      if (!Number.isInteger(number) || number < 1 || number > 10000) throw new OssError(400, "InvalidArgument", "bad partNumber");
      let data = body;
      if (req.headers["x-oss-copy-source"] !== undefined) {
        const source = this.copySource(req).data;
        const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers["x-oss-copy-source-range"] ?? ""));
        data = range ? source.subarray(Number(range[1]), Number(range[2]) + 1) : source;
      }
      const part = { data, etag: etagOf(data), modified: new Date() };
      upload.parts.set(number, part);
      if (req.headers["x-oss-copy-source"] !== undefined) {
        return this.sendXml(res, `<CopyPartResult><LastModified>${xml(part.modified)}</LastModified><ETag>${xml(part.etag)}</ETag></CopyPartResult>`, { ETag: part.etag });
      }
      res.setHeader("ETag", part.etag);
      res.setHeader("x-oss-request-id", randomUUID());
      return void res.end();
    }
    if (method === "POST" && uploadId !== null) return this.complete(res, key, uploadId, body);
    if (method === "DELETE" && uploadId !== null) {
      this.upload(uploadId);
      this.uploads.delete(uploadId);
      res.statusCode = 204;
      return void res.end();
    }
    if (method === "GET" && uploadId !== null) return this.listParts(res, key, uploadId);
    switch (method) {
      case "PUT": {
        const data = req.headers["x-oss-copy-source"] !== undefined ? this.copySource(req).data : body;
        const stored = { data, etag: etagOf(data), modified: new Date() };
        this.objects.set(key, stored);
        if (req.headers["x-oss-copy-source"] !== undefined) {
          return this.sendXml(res, `<CopyObjectResult><ETag>${xml(stored.etag)}</ETag><LastModified>${xml(stored.modified)}</LastModified></CopyObjectResult>`);
        }
        res.setHeader("ETag", stored.etag);
        res.setHeader("x-oss-request-id", randomUUID());
        return void res.end();
      }
      case "GET":
      case "HEAD":
        return this.getObject(req, res, this.object(key));
      case "DELETE":
        this.objects.delete(key);
        res.statusCode = 204;
        return void res.end();
      default:
        throw new OssError(405, "MethodNotAllowed", `${method} on an object`);
    }
  }

  private getObject(req: IncomingMessage, res: ServerResponse, object: StoredObject): void {
    const size = object.data.length;
    let start = 0;
    let end = size - 1;
    const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ""));
    if (range && (range[1] || range[2])) {
      start = range[1] ? Number(range[1]) : Math.max(0, size - Number(range[2]));
      end = range[1] && range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start >= size) throw new OssError(416, "InvalidRange", "The requested range cannot be satisfied.");
      res.statusCode = 206;
      res.setHeader("Content-Range", `bytes ${start}-${end}/${size}`);
    }
    res.setHeader("ETag", object.etag);
    res.setHeader("Last-Modified", object.modified.toUTCString());
    res.setHeader("Content-Type", "application/octet-stream");
    res.setHeader("Content-Length", end - start + 1);
    res.setHeader("x-oss-request-id", randomUUID());
    res.end(req.method === "HEAD" ? undefined : object.data.subarray(start, end + 1));
  }

  private listObjects(res: ServerResponse, q: URLSearchParams): void {
    const prefix = q.get("prefix") ?? "";
    const delimiter = q.get("delimiter") ?? "";
    const marker = q.get("marker") ?? "";
    const max = Math.min(Number(q.get("max-keys") ?? 100), 1000);
    const contents: string[] = [];
    const prefixes: string[] = [];
    let last = "";
    let truncated = false;
    for (const key of this.keys()) {
      if (!key.startsWith(prefix) || key <= marker) continue;
      const rest = key.slice(prefix.length);
      const cut = delimiter ? rest.indexOf(delimiter) : -1;
      const common = cut >= 0 ? prefix + rest.slice(0, cut + delimiter.length) : undefined;
      if (common && (prefixes.includes(common) || common <= marker)) continue;
      if (contents.length + prefixes.length === max) {
        truncated = true;
        break;
      }
      if (common) {
        prefixes.push(common);
        last = common;
      } else {
        contents.push(key);
        last = key;
      }
    }
    const objectXml = contents.map((key) => {
      const o = this.object(key);
      return `<Contents><Key>${xml(key)}</Key><LastModified>${xml(o.modified)}</LastModified><ETag>${xml(o.etag)}</ETag><Type>Normal</Type><Size>${o.data.length}</Size><StorageClass>Standard</StorageClass><Owner><ID>1</ID><DisplayName>test</DisplayName></Owner></Contents>`;
    });
    const prefixXml = prefixes.map((p) => `<CommonPrefixes><Prefix>${xml(p)}</Prefix></CommonPrefixes>`);
    this.sendXml(
      res,
      `<ListBucketResult><Name>${xml(this.options.bucket)}</Name><Prefix>${xml(prefix)}</Prefix><Marker>${xml(marker)}</Marker><MaxKeys>${max}</MaxKeys><Delimiter>${xml(delimiter)}</Delimiter><IsTruncated>${truncated}</IsTruncated>${truncated ? `<NextMarker>${xml(last)}</NextMarker>` : ""}${objectXml.join("")}${prefixXml.join("")}</ListBucketResult>`,
    );
  }

  private deleteMultiple(res: ServerResponse, body: Buffer): void {
    const keys = [...body.toString("utf8").matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) =>
      (m[1] ?? "").replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&quot;", '"').replaceAll("&amp;", "&"),
    );
    for (const key of keys) this.objects.delete(key);
    this.sendXml(res, "<DeleteResult></DeleteResult>");
  }

  private complete(res: ServerResponse, key: string, uploadId: string, body: Buffer): void {
    const upload = this.upload(uploadId);
    const listed = [...body.toString("utf8").matchAll(/<Part>\s*<PartNumber>(\d+)<\/PartNumber>\s*<ETag>([^<]*)<\/ETag>\s*<\/Part>/g)].map((m) => ({
      number: Number(m[1]),
      etag: (m[2] ?? "").replaceAll("&quot;", '"'),
    }));
    if (listed.length === 0) throw new OssError(400, "MalformedXML", "no parts in CompleteMultipartUpload");
    const data: Buffer[] = [];
    for (const [i, { number, etag }] of listed.entries()) {
      const part = upload.parts.get(number);
      if (!part || part.etag.replaceAll('"', "") !== etag.replaceAll('"', "")) throw new OssError(400, "InvalidPart", `part ${number} is unknown or its ETag differs`);
      if (i > 0 && listed[i - 1]!.number >= number) throw new OssError(400, "InvalidPartOrder", "parts must ascend");
      if (i < listed.length - 1 && part.data.length < MIN_PART) throw new OssError(400, "EntityTooSmall", `part ${number} is smaller than 100 KB`);
      data.push(part.data);
    }
    const whole = Buffer.concat(data);
    const etag = `"${createHash("md5").update(Buffer.concat(listed.map(({ number }) => createHash("md5").update(upload.parts.get(number)!.data).digest()))).digest("hex").toUpperCase()}-${listed.length}"`;
    this.objects.set(upload.key, { data: whole, etag, modified: new Date() });
    this.uploads.delete(uploadId);
    this.sendXml(res, `<CompleteMultipartUploadResult><Location>${xml(this.endpoint)}/${xml(key)}</Location><Bucket>${xml(this.options.bucket)}</Bucket><Key>${xml(key)}</Key><ETag>${xml(etag)}</ETag></CompleteMultipartUploadResult>`);
  }

  private listUploads(res: ServerResponse, q: URLSearchParams): void {
    const prefix = q.get("prefix") ?? "";
    const uploads = [...this.uploads.entries()]
      .filter(([, u]) => u.key.startsWith(prefix))
      .sort(([a, x], [b, y]) => (x.key === y.key ? (a < b ? -1 : 1) : x.key < y.key ? -1 : 1))
      .map(([id, u]) => `<Upload><Key>${xml(u.key)}</Key><UploadId>${id}</UploadId><Initiated>${xml(u.initiated)}</Initiated></Upload>`);
    this.sendXml(
      res,
      `<ListMultipartUploadsResult><Bucket>${xml(this.options.bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker><Delimiter></Delimiter><Prefix>${xml(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads.join("")}</ListMultipartUploadsResult>`,
    );
  }

  private listParts(res: ServerResponse, key: string, uploadId: string): void {
    const upload = this.upload(uploadId);
    const parts = [...upload.parts.entries()]
      .sort(([a], [b]) => a - b)
      .map(([n, p]) => `<Part><PartNumber>${n}</PartNumber><LastModified>${xml(p.modified)}</LastModified><ETag>${xml(p.etag)}</ETag><Size>${p.data.length}</Size></Part>`);
    const next = Math.max(0, ...upload.parts.keys());
    this.sendXml(
      res,
      `<ListPartsResult><Bucket>${xml(this.options.bucket)}</Bucket><Key>${xml(key)}</Key><UploadId>${uploadId}</UploadId><PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>${next}</NextPartNumberMarker><MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>${parts.join("")}</ListPartsResult>`,
    );
  }
}

/** The keys the test OSS server accepts. */
export const OSS_CREDENTIALS = { accessKeyId: "LAINOSSTESTKEYID0001", accessKeySecret: "lainOssTestSecret000000000000001" };

/** Driver options for a test OSS server holding one bucket. */
export function ossTestOptions(server: OssTestServer, bucket: string, overrides: Partial<OssOptions> = {}): OssOptions {
  return {
    ...OSS_CREDENTIALS,
    region: "oss-cn-beijing",
    // ali-oss presigns only for host names; the test server is one bucket, as a CNAME'd domain is.
    endpoint: server.endpoint.replace("127.0.0.1", "localhost"),
    internal: false,
    cname: true,
    bucket,
    encrypt: false,
    secure: false,
    chunkSize: 5 * 1024 * 1024,
    rootDirectory: "/registry",
    ...overrides,
  };
}
