import type { RequestContext } from "./context.js";

/**
 * What every line logged for a request says of it, under distribution's field names (dotted keys,
 * as its logrus JSON has them), so pipelines and dashboards built for distribution keep working.
 */
export function requestFields(ctx: RequestContext): Record<string, unknown> {
  const { req } = ctx;
  return {
    "http.request.id": ctx.id,
    "http.request.method": ctx.method,
    "http.request.uri": req.url,
    "http.request.host": req.headers.host,
    "http.request.remoteaddr": ctx.remoteAddress,
    "http.request.useragent": req.headers["user-agent"],
    // The route's variables; distribution calls the upload id "uuid".
    ...Object.fromEntries(Object.entries(ctx.params).map(([key, value]) => [`vars.${key === "upload" ? "uuid" : key}`, value])),
    ...(ctx.user !== undefined ? { "auth.user.name": ctx.user } : {}),
    // Ours: a refused request's attempted user and why, which the client is not told apart.
    ...(ctx.refusedAuth?.user !== undefined ? { "auth.user.attempted": ctx.refusedAuth.user } : {}),
    ...(ctx.refusedAuth ? { "auth.refused": ctx.refusedAuth.reason } : {}),
    // Ours: a sibling mirror fetching for its node.
    ...(ctx.fromSibling ? { sibling: true } : {}),
  };
}

/**
 * distribution's http.response.written: body bytes. Every response of ours declares its length,
 * so a finished one wrote exactly that; one cut short wrote at most what crossed the connection.
 */
export function bodyWritten(ctx: RequestContext, bytesOut: number): number {
  const { res } = ctx;
  if (ctx.head || res.statusCode === 204 || res.statusCode === 304) return 0;
  const declared = Number(res.getHeader("content-length"));
  return res.writableFinished && Number.isFinite(declared) ? declared : bytesOut;
}

/** A duration as Go prints one ("350µs", "12.5ms", "2m3.5s"): distribution's http.response.duration. */
export function goDuration(nanoseconds: bigint): string {
  const ns = Number(nanoseconds);
  const trim = (value: number, digits: number) => value.toFixed(digits).replace(/\.?0+$/, "");
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${trim(ns / 1e3, 3)}µs`;
  if (ns < 1e9) return `${trim(ns / 1e6, 6)}ms`;
  const hours = Math.floor(ns / 3.6e12);
  const minutes = Math.floor((ns % 3.6e12) / 6e10);
  const seconds = (ns % 6e10) / 1e9;
  return `${hours > 0 ? `${hours}h` : ""}${hours > 0 || minutes > 0 ? `${minutes}m` : ""}${trim(seconds, 9)}s`;
}

