import type { Agent as HttpAgent, IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Agent as HttpsAgent } from "node:https";
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import { http, https } from "../builtins.js";

/** What a peer answered: its status, its headers, and the body to read (or dump). */
export interface PeerResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
}

export interface PeerClientOptions {
  /** Connections to each origin, at most. */
  maxConnections: number;
  /** Connecting; then waiting for the response's headers, again after each 1xx; then silence mid-body. */
  connectMs: number;
  headersMs: number;
  idleMs: number;
}

/** GET and HEAD read; a standby's write-back (proxy/writeback.ts) sends the rest. */
export type PeerMethod = "GET" | "HEAD" | "POST" | "PUT" | "DELETE";

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTIONS = 5;
/** A body read to its end unseen, at most; beyond, its connection is not worth keeping. */
const DUMP_BYTES = 128 * 1024;

export class PeerTimeoutError extends Error {
  constructor(
    readonly phase: "connect" | "headers" | "body",
    ms: number,
  ) {
    super(phase === "connect" ? `connecting took longer than ${ms} ms` : phase === "headers" ? `no response headers within ${ms} ms` : `the body stalled for ${ms} ms`);
    this.name = "PeerTimeoutError";
  }

  get code(): string {
    return `PEER_${this.phase.toUpperCase()}_TIMEOUT`;
  }
}

/**
 * An HTTP client for a mirror's peers on node:http's agents: a bounded pool of keep-alive
 * connections per origin, three timeouts (connecting; the response's headers, which a
 * `102 Processing` restarts, as a sibling that waits on the primary sends them; silence in the
 * body), and redirects followed (a peer on object storage sends blob GETs to a presigned URL),
 * Authorization dropped when one leaves the origin. node:http parses with the llhttp built into
 * Node; undici's WebAssembly copy of it cost a mirror 20 MiB of resident memory idle.
 */
export class PeerClient {
  private readonly plain: HttpAgent;
  private secure: HttpsAgent | undefined;

  constructor(private readonly options: PeerClientOptions) {
    this.plain = new http.Agent({ keepAlive: true, maxSockets: options.maxConnections });
  }

  /**
   * Sends a request and resolves once the final response's headers are in. A request with a body
   * (a standby's write-back) is sent once: a redirect is its answer, as a body cannot be sent twice.
   */
  async request(origin: string, path: string, method: PeerMethod, headers: Record<string, string>, body?: Buffer | Readable): Promise<PeerResponse> {
    let url = new URL(path, origin);
    let sent = { ...headers };
    for (let hop = 0; ; hop++) {
      const res = await this.once(url, method, sent, body);
      const location = res.headers.location;
      if (body !== undefined || !REDIRECTS.has(res.statusCode) || !location || hop === MAX_REDIRECTIONS) return res;
      await dump(res.body);
      const next = new URL(location, url);
      if (next.origin !== url.origin) {
        const { authorization: _dropped, ...rest } = sent;
        sent = rest;
      }
      url = next;
    }
  }

  /** Cuts every connection: requests in flight fail, bodies being read break off. */
  close(): void {
    this.plain.destroy();
    this.secure?.destroy();
  }

  private agent(url: URL): HttpAgent | HttpsAgent {
    if (url.protocol !== "https:") return this.plain;
    this.secure ??= new (https().Agent)({ keepAlive: true, maxSockets: this.options.maxConnections });
    return this.secure;
  }

  private once(url: URL, method: string, headers: Record<string, string>, body: Buffer | Readable | undefined): Promise<PeerResponse> {
    const { connectMs, headersMs, idleMs } = this.options;
    return new Promise((resolve, reject) => {
      const send = url.protocol === "https:" ? https().request : http.request;
      const req = send(url, { method, headers, agent: this.agent(url) });
      let timer: NodeJS.Timeout | undefined;
      const wait = (phase: "connect" | "headers", ms: number) => {
        clearTimeout(timer);
        timer = setTimeout(() => req.destroy(new PeerTimeoutError(phase, ms)), ms);
      };
      req.once("socket", (socket: Socket) => {
        if (!socket.connecting) return wait("headers", headersMs);
        wait("connect", connectMs);
        socket.once("connect", () => wait("headers", headersMs));
      });
      // An interim response (102 Processing) says the peer is alive and working on it.
      req.on("information", () => wait("headers", headersMs));
      req.once("response", (res) => {
        clearTimeout(timer);
        watchBody(res, idleMs);
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      req.once("error", (err) => {
        clearTimeout(timer);
        if (body !== undefined && !Buffer.isBuffer(body)) body.destroy();
        reject(err);
      });
      if (body === undefined || Buffer.isBuffer(body)) {
        req.end(body);
      } else {
        // The body's failure (a store read) is the request's: it ends here, unanswered.
        body.once("error", (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }
}

/**
 * Breaks off a body its peer stops sending (its reader sees the error), and leaves the socket
 * without a timeout once the body is over, for the next request on it.
 */
function watchBody(res: IncomingMessage, idleMs: number): void {
  const { socket } = res;
  const stalled = () => res.destroy(new PeerTimeoutError("body", idleMs));
  socket.setTimeout(idleMs);
  socket.on("timeout", stalled);
  // Nobody may be reading an error of a body destroyed unread (an abandoned fill): it is the reader's.
  res.on("error", () => undefined);
  res.once("close", () => {
    socket.off("timeout", stalled);
    socket.setTimeout(0);
  });
}

/** Reads a body to its end unseen (a small one keeps its connection for the next request). */
export async function dump(body: IncomingMessage): Promise<void> {
  let read = 0;
  try {
    for await (const chunk of body) {
      read += (chunk as Buffer).length;
      if (read > DUMP_BYTES) {
        body.destroy();
        return;
      }
    }
  } catch {
    // A body that broke off while nobody wanted it.
  }
}
