import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { isRecycling } from "../storage/driver.js";
import { RegistryError } from "../registry/errors.js";
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

/** Reads a small request body, refusing it as soon as it exceeds `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number, tooBig: () => RegistryError): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) throw tooBig();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooBig();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

/** Whether the request carries a body (uploads may send their last chunk with the PUT). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  if (length !== undefined) return Number(length) > 0;
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
