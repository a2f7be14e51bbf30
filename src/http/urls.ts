import type { IncomingMessage } from "node:http";
import type { HttpConfig } from "../config/config.js";

/** The client's address as logs and events show it: the load balancer's X-Real-IP or X-Forwarded-For first. */
export function clientAddress(req: IncomingMessage): string | undefined {
  return firstHeader(req.headers["x-real-ip"]) ?? firstHeader(req.headers["x-forwarded-for"]) ?? req.socket.remoteAddress;
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
