import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Transform, type TransformCallback } from "node:stream";

export interface Seen {
  method: string;
  path: string;
  status: number;
}

/** What the proxy does to blob bodies passing through (GET /v2/.../blobs/<digest>). */
export interface BlobTampering {
  /** Flip one byte in the middle. */
  corrupt?: boolean;
  /** Called as bytes pass, with the count so far (e.g. to kill the peer mid-transfer). */
  onBytes?: (count: number) => void;
  /** Hold each chunk this long (a slow peer). */
  delayMs?: number;
  /** Reset the connection instead of answering (the peer dies before its headers). */
  refuse?: boolean;
  /** Reset the connection once this many bytes of the body have passed. */
  cutAfter?: number;
  /** How many blob bodies to cut (all when unset). */
  cuts?: number;
  /** Only bodies answered with these statuses are tampered with (200 and 206 when unset). */
  statuses?: number[];
  /** Headers left out of every answer to a blob GET, whatever its status (a peer that does not send them). */
  dropHeaders?: string[];
}

/**
 * An HTTP proxy on 127.0.0.1 in front of a real registry: it records every request the mirror
 * makes to its peer (to prove coalescing) and can tamper with blob bodies.
 */
export class CountingProxy {
  readonly seen: Seen[] = [];
  tamper: BlobTampering = {};
  /** Every request's connection is reset unanswered: the peer is down, as seen through this link. */
  down = false;
  /** Writes (POST, PUT, PATCH, DELETE) are answered 503 unforwarded; reads pass: a peer that serves but takes no pushes yet. */
  writesFail = false;
  /** Told of each answer of the peer as it arrives, before the client has it (e.g. to kill the client at a given request). */
  onAnswer: ((seen: Seen) => void) | undefined;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    /** The registry behind the proxy; a test may point it at a restarted peer. */
    public target: string,
  ) {}

  static async start(target: string): Promise<CountingProxy> {
    let proxy: CountingProxy | undefined;
    const server = createServer((req, res) => proxy?.forward(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new CountingProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, target);
    return proxy;
  }

  /** Requests seen for one method whose path matches. */
  count(method: string, path: RegExp): number {
    return this.seen.filter((s) => s.method === method && path.test(s.path)).length;
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const { hostname, port } = new URL(this.target);
    if (this.down) {
      req.socket.resetAndDestroy();
      return;
    }
    if (this.writesFail && !["GET", "HEAD"].includes(req.method ?? "")) {
      this.seen.push({ method: req.method ?? "", path: req.url ?? "", status: 503 });
      req.resume();
      res.writeHead(503, { "content-type": "application/json" }).end('{"errors":[{"code":"UNAVAILABLE","message":"takes no writes now"}]}');
      return;
    }
    if (this.tamper.refuse && req.method === "GET" && /\/blobs\/sha256:/.test(req.url ?? "")) {
      this.seen.push({ method: req.method, path: req.url ?? "", status: 0 });
      req.socket.resetAndDestroy();
      return;
    }
    const upstream = request({ hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (reply) => {
      const seen = { method: req.method ?? "", path: req.url ?? "", status: reply.statusCode ?? 0 };
      this.seen.push(seen);
      this.onAnswer?.(seen);
      const blobGet = req.method === "GET" && /\/blobs\/sha256:/.test(req.url ?? "");
      const headers = { ...reply.headers };
      if (blobGet) for (const name of this.tamper.dropHeaders ?? []) delete headers[name];
      res.writeHead(reply.statusCode ?? 502, headers);
      // Whole bodies and ranges (a mirror resuming) alike.
      const isBlob = blobGet && (this.tamper.statuses ?? [200, 206]).includes(reply.statusCode ?? 0);
      const body = isBlob ? reply.pipe(this.tamperer(Number(reply.headers["content-length"] ?? 0), () => res.socket?.resetAndDestroy())) : reply;
      body.pipe(res);
      reply.on("error", () => res.destroy());
      reply.on("aborted", () => res.destroy());
      reply.on("close", () => {
        if (!reply.complete) res.destroy();
      });
    });
    upstream.on("error", () => {
      this.seen.push({ method: req.method ?? "", path: req.url ?? "", status: 0 });
      res.destroy();
    });
    req.pipe(upstream);
  }

  private tamperer(size: number, cut: () => void): Transform {
    const tamper = this.tamper;
    let count = 0;
    let flipped = false;
    const cutting = tamper.cutAfter !== undefined && (tamper.cuts === undefined || tamper.cuts-- > 0);
    return new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        const start = count;
        count += chunk.length;
        if (cutting && count > (tamper.cutAfter ?? Infinity)) {
          cut();
          callback();
          return;
        }
        if (tamper.corrupt && !flipped && count > size / 2) {
          const copy = Buffer.from(chunk);
          const at = Math.max(0, Math.floor(size / 2) - start);
          copy[at] = (copy[at] ?? 0) ^ 0xff;
          chunk = copy;
          flipped = true;
        }
        tamper.onBytes?.(count);
        if (tamper.delayMs) setTimeout(() => callback(null, chunk), tamper.delayMs);
        else callback(null, chunk);
      },
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
