import type { IncomingMessage, ServerResponse } from "node:http";
import { PassThrough, type Readable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { isRecycling } from "../storage/driver.js";
import { RegistryError } from "../registry/errors.js";
import type { IncomingBody } from "../registry/uploads.js";
import type { RequestContext } from "./context.js";

/** Sends a complete small response; HEAD gets the same headers without the body. */
export function sendBody(ctx: RequestContext, status: number, body: Buffer | string, contentType: string): void {
  const { res } = ctx;
  res.statusCode = status;
  res.setHeader("Content-Type", contentType);
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(ctx.head ? undefined : body);
}

export function sendJson(ctx: RequestContext, status: number, value: unknown, contentType = "application/json"): void {
  sendBody(ctx, status, JSON.stringify(value), contentType);
}

/** A response without a body (201, 202, 204), with the headers given. */
export function sendEmpty(ctx: RequestContext, status: number, headers: Record<string, string | number> = {}): void {
  const { res } = ctx;
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader("Content-Length", 0);
  res.end();
}

/**
 * A client that asked to be told (`Expect: 100-continue`) sends its body once a handler is about
 * to read it: a request refused before then (authentication, no room) never sent its body.
 */
function acceptBody(ctx: RequestContext): void {
  if (ctx.req.headers.expect?.toLowerCase() === "100-continue" && !ctx.res.headersSent) ctx.res.writeContinue();
}

/** The body's declared length (Content-Length), when it has one. */
export function declaredLength(req: IncomingMessage): number | undefined {
  const length = req.headers["content-length"];
  return length === undefined ? undefined : Number(length);
}

/** Reads a small request body, refusing it as soon as it exceeds `limit` bytes. */
export async function readBody(ctx: RequestContext, limit: number, tooBig: () => RegistryError): Promise<Buffer> {
  const { req } = ctx;
  if ((declaredLength(req) ?? 0) > limit) throw tooBig();
  acceptBody(ctx);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooBig();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

/** The request body as the store takes it: its declared length first, its bytes once opened. */
export function incomingBody(ctx: RequestContext): IncomingBody {
  return { length: declaredLength(ctx.req), open: () => requestBody(ctx) };
}

/**
 * The request body for the store to write. Piped, not pipelined, from the request: a store that
 * fails mid-body ends this stream, and the request (with its connection) stays to carry the
 * error response. A client that goes away ends it with its error.
 */
function requestBody(ctx: RequestContext): Readable {
  const { req } = ctx;
  acceptBody(ctx);
  const body = new PassThrough({ highWaterMark: BODY_BUFFER });
  const gone = () => {
    if (!req.complete) body.destroy(clientGone());
  };
  req.once("close", gone);
  body.once("close", () => {
    req.off("close", gone);
    req.unpipe(body);
  });
  req.pipe(body);
  return body;
}

/** Whether the request carries a body (uploads may send their last chunk with the PUT). */
export function hasBody(req: IncomingMessage): boolean {
  const length = declaredLength(req);
  if (length !== undefined) return length > 0;
  return req.headers["transfer-encoding"] !== undefined;
}

/** Query parameter `n` for paginated lists: a non-negative integer, or undefined when absent. */
export function pageSize(url: URL): number | undefined {
  const n = url.searchParams.get("n");
  if (n === null || n === "") return undefined;
  if (!/^\d+$/.test(n)) throw new RegistryError("PAGINATION_NUMBER_INVALID", `n must be a non-negative integer, not ${JSON.stringify(n)}`);
  return Number(n);
}

/** RFC 8288 Link header to the next page, as distribution writes it. */
export function nextLink(path: string, last: string, n: number): string {
  const query = new URLSearchParams({ last, n: String(n) });
  return `<${path}?${query.toString()}>; rel="next"`;
}

/** What a request body's hop to the store holds: a socket read or two. */
const BODY_BUFFER = 128 * 1024;

/**
 * A reader's chunks written within one tick go out corked, as one writev, up to this much before
 * waiting for the socket: a fill hands out the upstream's 64 KiB reads, and a syscall for each
 * cost a cold pull a tenth of its speed.
 */
const CORKED_BYTES = 1024 * 1024;

function clientGone(): Error {
  return Object.assign(new Error("client went away"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}

/** Resolves when the response can take more, rejects if the client goes away first (or went already). */
function drained(res: ServerResponse): Promise<void> {
  // A response destroyed before this wait has already emitted "close", and never will again.
  if (res.destroyed) return Promise.reject(clientGone());
  return new Promise((resolve, reject) => {
    const settle = (err?: Error) => {
      res.off("drain", onDrain);
      res.off("close", onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => settle();
    const onClose = () => settle(clientGone());
    res.once("drain", onDrain);
    res.once("close", onClose);
  });
}

/**
 * Streams a body into the response. Chunks of a recycling reader go back to it as soon as the
 * socket has taken them; other streams are simply piped.
 */
export async function streamBody(source: Readable, res: ServerResponse): Promise<void> {
  if (!isRecycling(source)) return pipeline(source, res);
  let corked = false;
  const uncork = () => {
    corked = false;
    res.uncork();
  };
  for await (const chunk of source) {
    const buffer = chunk as Buffer;
    // Writes below the corked budget do not wait, so the loop asks itself whether the client left.
    if (res.destroyed) throw clientGone();
    if (!corked) {
      corked = true;
      res.cork();
      process.nextTick(uncork);
    }
    res.write(buffer, (err) => {
      if (!err) source.release(buffer);
    });
    if (res.writableLength >= CORKED_BYTES) await drained(res);
  }
  res.end();
  await finished(res);
}
