import type { Readable } from "node:stream";
import { request } from "undici";

export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  text: string;
  json<T = unknown>(): T;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

/** One HTTP exchange, the whole reply read (test bodies are small unless a test streams). */
export async function call(method: string, url: string, options: RequestOptions = {}): Promise<Reply> {
  const res = await request(url, { method: method as "GET", headers: options.headers, body: options.body });
  const body = Buffer.from(await res.body.arrayBuffer());
  return {
    status: res.statusCode,
    headers: flattenHeaders(res.headers),
    body,
    text: body.toString("utf8"),
    json: <T>() => JSON.parse(body.toString("utf8")) as T,
  };
}

/** The first spec error code of an error reply. */
export function errorCode(reply: Reply): string | undefined {
  try {
    return reply.json<{ errors?: Array<{ code?: string }> }>().errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

/** Resolves a Location header (absolute or relative) against the registry URL. */
export function resolveLocation(base: string, location: string | undefined): string {
  if (!location) throw new Error("no Location header");
  return new URL(location, base).toString();
}
