import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import type { HttpConfig } from "../config/config.js";

/**
 * The client's address as logs and events show it, as distribution's RemoteAddr has it: the
 * first X-Forwarded-For address, else X-Real-IP (each only if it is an IP), else the peer's
 * address and port.
 */
export function clientAddress(req: IncomingMessage): string | undefined {
  const forwarded = [firstHeader(req.headers["x-forwarded-for"]), firstHeader(req.headers["x-real-ip"])].find((a) => a !== undefined && isIP(a) !== 0);
  if (forwarded) return forwarded;
  // A connection already gone has no socket any more.
  const { remoteAddress, remotePort } = req.socket ?? {};
  if (remoteAddress === undefined) return undefined;
  return `${remoteAddress.includes(":") ? `[${remoteAddress}]` : remoteAddress}:${remotePort}`;
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v?.split(",")[0]?.trim() || undefined;
}

/**
 * The base of absolute URLs in Location headers, as distribution builds it: http.host when
 * set, else the request's (X-Forwarded-)Proto and Host; empty with http.relativeurls.
 */
export function baseUrl(http: HttpConfig, req: IncomingMessage): string {
  if (http.relativeUrls) return http.prefix;
  return `${originOf(http, req)}${http.prefix}`;
}

/** scheme://host the client used (X-Forwarded-* behind a proxy), without the route prefix. */
export function originOf(http: HttpConfig, req: IncomingMessage): string {
  if (http.host) return http.host;
  const proto = firstHeader(req.headers["x-forwarded-proto"]) ?? (http.tls ? "https" : "http");
  const host = firstHeader(req.headers["x-forwarded-host"]) ?? req.headers.host ?? "localhost";
  return `${proto}://${host}`;
}

export function blobUrl(base: string, name: string, digest: string): string {
  return `${base}/v2/${name}/blobs/${digest}`;
}

export function manifestUrl(base: string, name: string, reference: string): string {
  return `${base}/v2/${name}/manifests/${reference}`;
}

export function uploadUrl(base: string, name: string, id: string, state: string): string {
  return `${base}/v2/${name}/blobs/uploads/${id}?_state=${encodeURIComponent(state)}`;
}
