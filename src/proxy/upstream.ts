import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import type { ProxyConfig } from "../config/config.js";
import { digestAlgorithm, digestOf, isDigest, type Digest } from "../registry/digest.js";
import type { Descriptor } from "../registry/manifest-format.js";
import { MANIFEST_MAX_BYTES } from "../registry/manifests.js";
import { baseMediaType, MANIFEST_MEDIA_TYPES } from "../registry/media-types.js";
import type { RepositoryName, Tag } from "../registry/names.js";
import { dump, PeerClient, type PeerMethod, type PeerResponse } from "./peer-client.js";
import { UpstreamAuth } from "./upstream-auth.js";

/** The peer could not answer: unreachable, timed out, 5xx, refused our credentials, or lied. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    /** The peer's status when it answered; undefined when it could not be reached. */
    readonly status?: number,
  ) {
    super(message);
    this.name = "UpstreamError";
  }
}

export type Found<T> = ({ kind: "found" } & T) | { kind: "missing" };

/** What a peer answers a client's range with: bytes [start, end) of a blob of `size`, or that the range is outside it. */
export type AskedRange = { size: number; start: number; end: number; body: Readable } | { size: number; unsatisfiable: true };

export interface UpstreamManifest {
  digest: Digest;
  mediaType: string | undefined;
  content: Buffer;
}

/** Marks every request a mirror sends its peer with the mirror's own id (see AppContext.ownHop). */
export const HOP_HEADER = "x-lain-hop";

/** Tag lists and catalogs are followed through at most this many Link pages. */
const MAX_PAGES = 100;
const ACCEPT_MANIFESTS = MANIFEST_MEDIA_TYPES.join(", ");
/** Token endpoints answer small JSON documents; anything bigger is not one. */
const MAX_TOKEN_RESPONSE = 1024 * 1024;

/** How long a peer that failed is passed over for the next one in proxy.remoteurl. */
const DOWN_MS = 10_000;

/** One URL of proxy.remoteurl. */
interface Peer {
  url: string;
  origin: string;
  /** The URL's own path: a peer behind a prefix. */
  basePath: string;
}

/** Signs a request in place of credentials (a sibling mirror's request): headers to add. */
export type RequestSigner = (method: string, path: string) => Record<string, string>;

interface Sent {
  /** The peer that answered. */
  peer: Peer;
  status: number;
  headers: PeerResponse["headers"];
  body: PeerResponse["body"];
}

function header(headers: Sent["headers"], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Reads a response body up to `limit` bytes, failing on more. */
async function readLimited(body: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new UpstreamError(`${what} is larger than ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * The peer registry, spoken to over the Docker Registry HTTP API v2 with a bounded connection
 * pool. Expected outcomes (found, missing) are values; everything else is an UpstreamError whose
 * message names the peer. Several equivalent peers are tried in order: one that cannot be
 * reached or answers 5xx is passed over for a while.
 */
export class UpstreamRegistry {
  /** The peers, for messages and the console. */
  readonly url: string;
  /** This mirror's id on its requests to the peer: what it refuses to be asked. */
  readonly hop = randomUUID();
  private readonly peers: Peer[];
  /** When each peer that failed may be tried first again. */
  private readonly down = new Map<Peer, number>();
  private readonly client: PeerClient;
  private readonly auth: UpstreamAuth;

  constructor(
    config: ProxyConfig,
    /** Told of every failed request to the peer (for the metrics). */
    private readonly failed: () => void = () => undefined,
    private readonly sign?: RequestSigner,
  ) {
    this.url = config.remoteUrls.join(", ");
    this.peers = config.remoteUrls.map((url) => {
      const parsed = new URL(url);
      return { url, origin: parsed.origin, basePath: parsed.pathname.replace(/\/$/, "") };
    });
    this.client = new PeerClient({
      maxConnections: config.maxConnections,
      connectMs: config.timeouts.connectMs,
      headersMs: config.timeouts.responseMs,
      idleMs: config.timeouts.idleMs,
    });
    const credentials = config.username !== undefined ? { username: config.username, password: config.password ?? "" } : undefined;
    this.auth = new UpstreamAuth(credentials, (url, basic) => this.fetchToken(url, basic));
  }

  /** Aborts what is in flight: a stopping registry has already let its clients' requests drain. */
  close(): Promise<void> {
    this.client.close();
    return Promise.resolve();
  }

  /** GET /v2/ with the configured credentials: what the peer answers, for `config check --connect`. */
  async check(): Promise<string> {
    const res = await this.send("GET", "/v2/", "");
    await this.expect(res, 200, "the API check /v2/");
    await dump(res.body);
    return `upstream ${res.peer.url} answers the registry API`;
  }

  /** GET a blob: its size and a stream of its bytes, which the caller must consume or destroy. */
  async fetchBlob(name: RepositoryName, digest: Digest): Promise<Found<{ size: number; body: Readable }>> {
    const res = await this.send("GET", `/v2/${name}/blobs/${digest}`, pullScope(name));
    if (res.status === 404) return missing(res);
    await this.expect(res, 200, `blob ${digest}`);
    const size = Number(header(res.headers, "content-length"));
    if (!Number.isSafeInteger(size) || size < 0) {
      res.body.destroy();
      throw new UpstreamError(`upstream ${res.peer.url} sent blob ${digest} without a Content-Length`);
    }
    return { kind: "found", size, body: res.body };
  }

  /**
   * GET bytes [start, end) of a blob of `size` bytes (the rest of a cut transfer, or a client's
   * range passed through): the peer must answer with exactly that range.
   */
  async fetchBlobRange(name: RepositoryName, digest: Digest, start: number, end: number, size: number): Promise<Readable> {
    const what = `bytes ${start}-${end - 1} of blob ${digest}`;
    const res = await this.send("GET", `/v2/${name}/blobs/${digest}`, pullScope(name), { range: `bytes=${start}-${end - 1}` });
    await this.expect(res, 206, what);
    const range = header(res.headers, "content-range") ?? "";
    const bounds = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(range);
    if (!bounds || Number(bounds[1]) !== start || Number(bounds[2]) !== end - 1 || (bounds[3] !== "*" && Number(bounds[3]) !== size)) {
      res.body.destroy();
      throw new UpstreamError(`upstream ${res.peer.url} answered ${what} with Content-Range "${range}"`);
    }
    return res.body;
  }

  /**
   * A client's single-range GET of a blob, passed on as it came: the bytes the peer answers, with
   * the blob's size from their Content-Range, or that the range is outside the blob.
   */
  async fetchAskedRange(name: RepositoryName, digest: Digest, range: string): Promise<Found<AskedRange>> {
    const what = `range ${range} of blob ${digest}`;
    const res = await this.send("GET", `/v2/${name}/blobs/${digest}`, pullScope(name), { range });
    if (res.status === 404) return missing(res);
    const contentRange = header(res.headers, "content-range") ?? "";
    if (res.status === 416) {
      await dump(res.body);
      const size = /^bytes \*\/(\d+)$/.exec(contentRange)?.[1];
      if (size !== undefined) return { kind: "found", size: Number(size), unsatisfiable: true };
      // A peer that does not say the size (RFC 9110 asks it to): a HEAD does.
      const head = await this.statBlob(name, digest);
      return head.kind === "found" ? { kind: "found", size: head.size, unsatisfiable: true } : head;
    }
    await this.expect(res, 206, what);
    const bounds = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(contentRange);
    if (!bounds) {
      res.body.destroy();
      throw new UpstreamError(`upstream ${res.peer.url} answered ${what} with Content-Range "${contentRange}"`);
    }
    return { kind: "found", size: Number(bounds[3]), start: Number(bounds[1]), end: Number(bounds[2]) + 1, body: res.body };
  }

  async statBlob(name: RepositoryName, digest: Digest): Promise<Found<{ size: number }>> {
    const res = await this.send("HEAD", `/v2/${name}/blobs/${digest}`, pullScope(name));
    if (res.status === 404) return missing(res);
    await this.expect(res, 200, `blob ${digest}`);
    await dump(res.body);
    const size = Number(header(res.headers, "content-length"));
    if (!Number.isSafeInteger(size) || size < 0) throw new UpstreamError(`upstream ${res.peer.url} answered HEAD of ${digest} without a size`);
    return { kind: "found", size };
  }

  /** GET a manifest, checking its content against the digest asked for or announced. */
  async fetchManifest(name: RepositoryName, reference: Tag | Digest): Promise<Found<UpstreamManifest>> {
    const res = await this.send("GET", `/v2/${name}/manifests/${reference}`, pullScope(name), { accept: ACCEPT_MANIFESTS });
    if (res.status === 404) return missing(res);
    await this.expect(res, 200, `manifest ${name}:${reference}`);
    const content = await readLimited(res.body, MANIFEST_MAX_BYTES, `upstream ${res.peer.url}'s manifest ${name}:${reference}`);
    const announced = header(res.headers, "docker-content-digest");
    const expected = isDigest(reference) ? reference : announced && isDigest(announced) ? announced : undefined;
    const digest = digestOf(content, expected ? digestAlgorithm(expected) : "sha256");
    if (expected && digest !== expected) {
      throw new UpstreamError(`upstream ${res.peer.url} sent manifest ${name}:${reference} whose content is ${digest}, not ${expected}`);
    }
    return { kind: "found", digest, mediaType: baseMediaType(header(res.headers, "content-type")), content };
  }

  /** HEAD a manifest: the digest a tag points at now, without its content. */
  async headManifest(name: RepositoryName, reference: Tag | Digest): Promise<Found<{ digest: Digest | undefined }>> {
    const res = await this.send("HEAD", `/v2/${name}/manifests/${reference}`, pullScope(name), { accept: ACCEPT_MANIFESTS });
    if (res.status === 404) return missing(res);
    await this.expect(res, 200, `manifest ${name}:${reference}`);
    await dump(res.body);
    const announced = header(res.headers, "docker-content-digest");
    return { kind: "found", digest: announced && isDigest(announced) ? announced : undefined };
  }

  /** Every tag of a repository (following Link pages); undefined when the peer does not know it. */
  async tags(name: RepositoryName): Promise<string[] | undefined> {
    const tags: string[] = [];
    let path: string | undefined = `/v2/${name}/tags/list`;
    for (let page = 0; path && page < MAX_PAGES; page++) {
      const res = await this.send("GET", path, pullScope(name));
      if (res.status === 404) {
        await dump(res.body);
        return page === 0 ? undefined : tags;
      }
      await this.expect(res, 200, `tags of ${name}`);
      const json = (await this.json(res)) as { tags?: unknown };
      if (Array.isArray(json.tags)) tags.push(...json.tags.filter((t): t is string => typeof t === "string"));
      path = nextPage(header(res.headers, "link"), res.peer);
    }
    return tags;
  }

  /** One catalog page after `last`. */
  async catalog(n: number, last: string | undefined): Promise<{ repositories: string[]; more: boolean }> {
    const query = new URLSearchParams({ n: String(n) });
    if (last !== undefined) query.set("last", last);
    const res = await this.send("GET", `/v2/_catalog?${query}`, "registry:catalog:*");
    await this.expect(res, 200, "the catalog");
    const json = (await this.json(res)) as { repositories?: unknown };
    const repositories = Array.isArray(json.repositories) ? json.repositories.filter((r): r is string => typeof r === "string") : [];
    return { repositories, more: nextPage(header(res.headers, "link"), res.peer) !== undefined };
  }

  /** The referrers the peer knows; none when it has no referrers API (distribution 2.x). */
  async referrers(name: RepositoryName, subject: Digest): Promise<Descriptor[]> {
    const res = await this.send("GET", `/v2/${name}/referrers/${subject}`, pullScope(name));
    if (res.status === 404) {
      await dump(res.body);
      return [];
    }
    await this.expect(res, 200, `referrers of ${subject}`);
    const json = (await this.json(res)) as { manifests?: unknown };
    return Array.isArray(json.manifests) ? (json.manifests as Descriptor[]).filter((d) => typeof d?.digest === "string" && isDigest(d.digest)) : [];
  }

  /**
   * Uploads a blob (a standby's write-back): POST a session, then one PUT of the whole blob,
   * streamed from `open`, to the peer that opened the session. The peer checks the digest.
   */
  async pushBlob(name: RepositoryName, digest: Digest, size: number, open: () => Promise<Readable>): Promise<void> {
    const scope = pushScope(name);
    const session = await this.send("POST", `/v2/${name}/blobs/uploads/`, scope);
    await this.expect(session, 202, `an upload session for ${digest}`);
    await dump(session.body);
    const location = header(session.headers, "location");
    if (!location) throw new UpstreamError(`upstream ${session.peer.url} opened an upload session for ${digest} without a Location`);
    // The path the peer named, on the origin it was reached at (it may not know its own address).
    const target = new URL(location, session.peer.url);
    target.searchParams.set("digest", digest);
    const headers = { "content-type": "application/octet-stream", "content-length": String(size) };
    const put = await this.sendTo(session.peer, "PUT", `${target.pathname}${target.search}`, scope, headers, await open(), false);
    await this.expect(put, 201, `blob ${digest}`);
    await dump(put.body);
  }

  /** PUTs a manifest's exact bytes (a standby's write-back); answers the digest the peer stored it under. */
  async putManifest(name: RepositoryName, reference: Tag | Digest, content: Buffer, mediaType: string): Promise<Digest> {
    const res = await this.send("PUT", `/v2/${name}/manifests/${reference}`, pushScope(name), { "content-type": mediaType }, content);
    await this.expect(res, 201, `manifest ${name}:${reference}`);
    await dump(res.body);
    const announced = header(res.headers, "docker-content-digest");
    return announced && isDigest(announced) ? announced : digestOf(content, "sha256");
  }

  /** DELETEs a tag or a manifest (a standby's write-back): whether the peer held it, or that it takes no such delete. */
  async deleteManifest(name: RepositoryName, reference: Tag | Digest): Promise<"deleted" | "missing" | "unsupported"> {
    const res = await this.send("DELETE", `/v2/${name}/manifests/${reference}`, `repository:${name}:delete`);
    if (res.status === 404) return (await missing(res)).kind;
    // distribution deletes by digest only, and a registry without storage.delete deletes nothing.
    if (res.status === 400 || res.status === 405) {
      await dump(res.body);
      return "unsupported";
    }
    await this.expect(res, 202, `manifest ${name}:${reference}`);
    await dump(res.body);
    return "deleted";
  }

  /**
   * Sends a request for an API path (with its query) to the first peer that answers below 500,
   * those that failed lately last; the last peer's answer is the answer.
   */
  private async send(method: PeerMethod, path: string, scope: string, extra: Record<string, string> = {}, body?: Buffer): Promise<Sent> {
    const now = Date.now();
    const order = [...this.peers.filter((p) => !((this.down.get(p) ?? 0) > now)), ...this.peers.filter((p) => (this.down.get(p) ?? 0) > now)];
    for (const [i, peer] of order.entries()) {
      const last = i === order.length - 1;
      let sent: Sent;
      try {
        sent = await this.sendTo(peer, method, path, scope, extra, body);
      } catch (err) {
        this.down.set(peer, Date.now() + DOWN_MS);
        if (last) throw err;
        continue;
      }
      if (sent.status < 500) this.down.delete(peer);
      else if (!last) {
        this.failed();
        this.down.set(peer, Date.now() + DOWN_MS);
        await dump(sent.body);
        continue;
      }
      return sent;
    }
    throw new Error("proxy.remoteurl lists no peer");
  }

  /**
   * Sends a request to one peer, answering a 401 challenge once with the credentials it asks for
   * (a streamed body cannot be sent again: its 401 is the answer). `prefixed`: the path does not
   * carry the peer's own path yet.
   */
  private async sendTo(peer: Peer, method: PeerMethod, apiPath: string, scope: string, extra: Record<string, string>, body?: Buffer | Readable, prefixed = true): Promise<Sent> {
    const path = prefixed ? `${peer.basePath}${apiPath}` : apiPath;
    for (let attempt = 0; ; attempt++) {
      const authorization = await this.auth.header(scope);
      const headers = { ...extra, ...(authorization ? { authorization } : {}), ...this.sign?.(method, path) };
      let res: PeerResponse;
      try {
        res = await this.dispatch(peer.origin, path, method, headers, body);
      } catch (err) {
        this.failed();
        throw new UpstreamError(`upstream ${peer.url} is unreachable: ${describeFailure(err)}`);
      }
      const sent = { peer, status: res.statusCode, headers: res.headers, body: res.body };
      if (res.statusCode !== 401 || attempt > 0 || (body !== undefined && !Buffer.isBuffer(body))) return sent;
      await dump(res.body);
      if (!this.auth.learn(header(res.headers, "www-authenticate"), scope, authorization)) return sent;
    }
  }

  /** One request, marked with this mirror's hop. */
  private dispatch(origin: string, path: string, method: PeerMethod, headers: Record<string, string>, body?: Buffer | Readable): Promise<PeerResponse> {
    return this.client.request(origin, path, method, { ...headers, [HOP_HEADER]: this.hop }, body);
  }

  private async expect(res: Sent, status: number, what: string): Promise<void> {
    if (res.status === status) return;
    // 421: this peer leaves the request to another (a slower sibling mirror); it has not failed.
    if (res.status !== 421) this.failed();
    const detail = (await readLimited(res.body, 64 * 1024, "error body").catch(() => Buffer.alloc(0))).toString("utf8").slice(0, 200);
    const reason =
      res.status === 401 || res.status === 403
        ? "refused our credentials (proxy.username / proxy.password)"
        : `answered ${res.status}${detail ? `: ${detail}` : ""}`;
    throw new UpstreamError(`upstream ${res.peer.url} ${reason} for ${what}`, res.status);
  }

  private async json(res: Sent): Promise<unknown> {
    const body = await readLimited(res.body, 16 * 1024 * 1024, `upstream ${res.peer.url}'s response`);
    try {
      return JSON.parse(body.toString("utf8"));
    } catch {
      throw new UpstreamError(`upstream ${res.peer.url} sent a response that is not JSON`);
    }
  }

  private async fetchToken(url: URL, basic: string | undefined): Promise<{ token: string; expiresInSeconds: number }> {
    let res: PeerResponse;
    try {
      res = await this.dispatch(url.origin, `${url.pathname}${url.search}`, "GET", basic ? { authorization: basic } : {});
    } catch (err) {
      throw new UpstreamError(`token realm ${url.origin}${url.pathname} of upstream ${this.url} is unreachable: ${describeFailure(err)}`);
    }
    const body = await readLimited(res.body, MAX_TOKEN_RESPONSE, "token response");
    if (res.statusCode !== 200) {
      throw new UpstreamError(`token realm ${url.origin}${url.pathname} of upstream ${this.url} answered ${res.statusCode}`, res.statusCode);
    }
    const json = JSON.parse(body.toString("utf8")) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof json.token === "string" ? json.token : typeof json.access_token === "string" ? json.access_token : undefined;
    if (!token) throw new UpstreamError(`token realm of upstream ${this.url} answered without a token`);
    // Docker token spec: without expires_in a token lasts 60 seconds.
    const expiresInSeconds = typeof json.expires_in === "number" && json.expires_in > 0 ? json.expires_in : 60;
    return { token, expiresInSeconds };
  }
}

function pullScope(name: RepositoryName): string {
  return `repository:${name}:pull`;
}

function pushScope(name: RepositoryName): string {
  return `repository:${name}:pull,push`;
}

async function missing(res: Sent): Promise<{ kind: "missing" }> {
  await dump(res.body);
  return { kind: "missing" };
}

/** The API path and query of a Link: <...>; rel="next" header, without the peer's own path. */
function nextPage(link: string | undefined, peer: Peer): string | undefined {
  const target = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)?.[1] : undefined;
  if (!target) return undefined;
  const url = new URL(target, "http://upstream.invalid");
  const path = url.pathname.startsWith(`${peer.basePath}/`) ? url.pathname.slice(peer.basePath.length) : url.pathname;
  return `${path}${url.search}`;
}

function describeFailure(err: unknown): string {
  const code = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
