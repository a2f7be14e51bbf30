import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { TlsOptions } from "node:tls";
import type { Access } from "../auth/access.js";
import { http, https } from "../builtins.js";
import type { AuthDecision } from "../auth/authenticator.js";
import { SIBLING_FROM_HEADER, SIBLING_HEADER, SIBLING_RATE_HEADER, siblingSignatureProblem } from "../auth/sibling-signature.js";
import { RegistryError } from "../registry/errors.js";
import { storeFault, type StoreFault } from "../storage/driver.js";
import type { AppContext, Door, RequestContext } from "./context.js";
import { sendError } from "./errors.js";
import { matchRoute, type RouteMatch } from "./router.js";
import { listen, type RunningServer } from "./listen.js";
import { bodyWritten, goDuration, requestFields } from "./log-fields.js";
import { clientAddress, originOf } from "./urls.js";
import { ROUTES } from "./routes.js";
import { sendMetrics } from "./metrics-endpoint.js";
import { keepSiblingWaiting } from "./sibling-heartbeat.js";

const API_VERSION_HEADER = "Docker-Distribution-API-Version";
const REQUEST_ID_HEADER = "X-Request-Id";
/** Sent by the web console on its registry API calls. */
const CONSOLE_HEADER = "x-lain-console";
/** An id the load balancer already gave the request is kept (nginx: proxy_set_header X-Request-Id $request_id). */
const GIVEN_REQUEST_ID = /^[\w.:-]{1,128}$/;

function requestId(req: IncomingMessage): string {
  const given = req.headers["x-request-id"];
  return typeof given === "string" && GIVEN_REQUEST_ID.test(given) ? given : randomUUID();
}

export interface ConnectionLimits {
  /** A client that goes quiet this long mid-request (or idle on keep-alive) is disconnected. */
  idleMs: number;
  /** All request headers must arrive within this (slowloris). */
  headersMs: number;
}

const DEFAULT_LIMITS: ConnectionLimits = { idleMs: 5 * 60_000, headersMs: 60_000 };

function isClientGone(err: unknown, req: IncomingMessage): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return req.destroyed || code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ECONNRESET" || code === "EPIPE";
}

/** A store that could not do what the request asked, as the client is told it. */
function storeFailure(fault: StoreFault): RegistryError {
  return fault.kind === "full"
    ? new RegistryError("STORAGE_FULL", `the registry's storage is full (${fault.cause}); retry once the operator has made room`)
    : new RegistryError("UNAVAILABLE", `the registry's storage failed (${fault.cause}); retry later`);
}

/** How long the rest of an unread request body is taken in after the answer, at most. */
const LINGER_MS = 5_000;

/**
 * An answer given before the request's body ended (an error mid-upload) closes the connection,
 * and the client is told so. Node closes it as soon as the answer is written, and the body still
 * coming then resets it: a client still sending reports a broken pipe instead of the answer (Go's
 * clients do, skopeo among them, which asks every connection to close). So the close lingers, as
 * Go's own server's does: the answer and a FIN go out, the rest of the body is read and dropped,
 * and the connection is cut once the client has closed it or after LINGER_MS.
 */
function lingerIfUnread(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket;
  if (req.complete || !socket) return;
  res.setHeader("Connection", "close");
  socket.destroySoon = () => {
    socket.end();
    req.resume();
    const cut = setTimeout(() => socket.destroy(), LINGER_MS);
    cut.unref();
    socket.once("close", () => clearTimeout(cut));
  };
}

function fail(app: AppContext, ctx: RequestContext, err: unknown): void {
  const { req, res } = ctx;
  const fault = storeFault(err);
  if (fault) {
    app.telemetry.log.warn({ err, ...requestFields(ctx) }, fault.kind === "full" ? "storage full" : "storage failed");
    err = storeFailure(fault);
  }
  if (err instanceof RegistryError) {
    // Every UNAVAILABLE is worth retrying; say when, unless the thrower already did.
    if (err.code === "UNAVAILABLE" && !res.headersSent && !res.hasHeader("Retry-After")) res.setHeader("Retry-After", "5");
    if (res.headersSent) {
      res.destroy();
      return;
    }
    lingerIfUnread(req, res);
    sendError(res, err, ctx.head);
    return;
  }
  if (isClientGone(err, req)) {
    res.destroy();
    return;
  }
  app.telemetry.log.error({ err, ...requestFields(ctx) }, "request failed");
  if (res.headersSent) {
    res.destroy();
    return;
  }
  lingerIfUnread(req, res);
  sendError(res, new RegistryError("UNKNOWN", "internal error; see the registry log"), ctx.head);
}

/** Bytes of a keep-alive connection already counted for earlier requests. */
const counted = new WeakMap<Socket, { read: number; written: number }>();

/**
 * When the response is done (or the client gone): one access log line and the request metrics.
 * Bytes are what crossed the connection for this request, headers included: everything since
 * the previous request on the connection ended (a body's first bytes arrive with its headers).
 */
function observe(app: AppContext, ctx: RequestContext, handler: string): void {
  const { req, res, method } = ctx;
  const started = process.hrtime.bigint();
  const socket = req.socket;
  const before = counted.get(socket) ?? { read: 0, written: 0 };
  const { metrics } = app.telemetry;
  const inFlight = { handler };
  metrics.httpInFlight.inc(inFlight);
  res.once("close", () => {
    const elapsed = process.hrtime.bigint() - started;
    const seconds = Number(elapsed) / 1e9;
    const now = { read: socket.bytesRead, written: socket.bytesWritten };
    counted.set(socket, now);
    const bytesIn = now.read - before.read;
    const bytesOut = now.written - before.written;
    const code = res.writableFinished ? String(res.statusCode) : "aborted";
    metrics.httpInFlight.dec(inFlight);
    metrics.httpRequests.inc({ handler, method, code });
    metrics.httpDuration.observe({ handler, method }, seconds);
    metrics.httpBytes.inc({ handler, direction: "in" }, bytesIn);
    metrics.httpBytes.inc({ handler, direction: "out" }, bytesOut);
    if (app.telemetry.accessLog) {
      app.telemetry.log.info(
        {
          ...requestFields(ctx),
          "http.response.status": res.statusCode,
          "http.response.written": bodyWritten(ctx, bytesOut),
          "http.response.duration": goDuration(elapsed),
          "http.response.contenttype": res.getHeader("content-type"),
          // Ours, beside distribution's.
          ...(code === "aborted" ? { aborted: true } : {}),
          bytesIn, bytesOut, ms: Math.round(seconds * 1e4) / 10,
        },
        "response completed",
      );
    }
  });
}

/** Asks the authenticator, when auth is configured, whether the request may do what it needs. */
async function authorize(app: AppContext, ctx: RequestContext, required: Access[] | "public"): Promise<AuthDecision> {
  if (!app.access.auth || required === "public") return { ok: true, user: undefined };
  const decision = await app.access.auth.authorize(ctx.req.headers.authorization, required, originOf(app.settings.http, ctx.req));
  if (decision.ok) {
    ctx.user = decision.user;
    return decision;
  }
  ctx.refusedAuth = { reason: decision.reason, ...(decision.user !== undefined ? { user: decision.user } : {}) };
  // An anonymous first request is the start of the challenge dance, not a failure.
  if (ctx.req.headers.authorization !== undefined || decision.code === "DENIED") app.telemetry.metrics.authFailures.inc({ code: decision.code });
  return decision;
}

/** What sibling mirrors may ask each other: blobs and manifests to read. */
const SIBLING_ROUTES = new Set(["blob", "manifest"]);

/**
 * A sibling mirror's request, signed with the shared http.secret, stands in for a user's
 * credentials: why it is refused, or undefined when it may go on. It may read a blob or a
 * manifest of a mirrored repository, at the door siblings are given, and nothing else.
 */
function siblingRefusal(app: AppContext, ctx: RequestContext, door: Door, route: string, signature: string | undefined): RegistryError | undefined {
  const { siblings } = app.access;
  if (siblings === undefined) return new RegistryError("DENIED", "this instance takes no requests from sibling mirrors (proxy.siblings is off)");
  if (door === "users" && siblings.addr !== undefined) return new RegistryError("DENIED", "this mirror takes sibling requests on its siblings' listener (proxy.siblings.addr) only");
  const refused = (message: string) => {
    app.telemetry.metrics.authFailures.inc({ code: "DENIED" });
    ctx.refusedAuth = { reason: message };
    return new RegistryError("DENIED", message);
  };
  if (signature === undefined) return refused("this is a mirror's siblings' listener (proxy.siblings.addr): it takes only the signed requests of sibling mirrors");
  if (!SIBLING_ROUTES.has(route) || (ctx.method !== "GET" && ctx.method !== "HEAD")) return refused("sibling mirrors may only read blobs and manifests");
  if (!app.access.mirrored?.includes(ctx.params.name ?? "")) return refused("sibling mirrors may only read the repositories they mirror");
  const problem = siblingSignatureProblem(siblings.secret, ctx.method, ctx.req.url ?? "", signature);
  return problem === undefined ? undefined : refused(problem);
}

/**
 * A refusal as the spec error, with the challenge that tells a client where to authenticate;
 * none for the web console, which asks its user itself (a challenge would make the browser open
 * its own dialog).
 */
function refusal(ctx: RequestContext, decision: Extract<AuthDecision, { ok: false }>, fromConsole: boolean): RegistryError {
  if (!fromConsole) ctx.res.setHeader("WWW-Authenticate", decision.challenge);
  return new RegistryError(decision.code, decision.message, decision.detail);
}

/** The console API's checks: the registry API's scopes, never a challenge. */
async function consoleAccess(app: AppContext, ctx: RequestContext, required: Access[]): Promise<void> {
  const decision = await authorize(app, ctx, required);
  if (!decision.ok) throw refusal(ctx, decision, true);
}

/** The request listener: routing, common headers, spec errors, access log, metrics. */
function requestListener(app: AppContext, door: Door): (req: IncomingMessage, res: ServerResponse) => void {
  const extraHeaders = Object.entries(app.settings.http.headers);
  return (req, res) => {
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", "http://registry.invalid");
    const ctx: RequestContext = {
      app, req, res, url, params: {}, method, head: method === "HEAD", id: requestId(req), remoteAddress: clientAddress(req), user: undefined, registry: app.registry, fromSibling: false,
    };
    res.setHeader(API_VERSION_HEADER, "registry/2.0");
    res.setHeader(REQUEST_ID_HEADER, ctx.id);
    for (const [name, values] of extraHeaders) res.setHeader(name, values);

    if (door === "siblings" && req.headers[SIBLING_HEADER] === undefined) {
      observe(app, ctx, "siblings");
      fail(app, ctx, siblingRefusal(app, ctx, door, "unknown", undefined));
      return;
    }
    if (door === "users" && app.telemetry.metricsPath !== undefined && url.pathname === app.telemetry.metricsPath) {
      observe(app, ctx, "metrics");
      sendMetrics(app.telemetry.metrics, req, res);
      return;
    }
    if (door === "users" && app.console && `${url.pathname}/` === app.console.path) {
      res.writeHead(308, { Location: app.console.path }).end();
      return;
    }
    if (door === "users" && app.console && url.pathname.startsWith(app.console.path)) {
      observe(app, ctx, "console");
      app.console.serve(ctx, (c, required) => consoleAccess(app, c, required)).catch((err: unknown) => fail(app, ctx, err));
      return;
    }
    const prefix = app.settings.http.prefix;
    const match: RouteMatch = url.pathname.startsWith(prefix)
      ? matchRoute(ROUTES, method, url, url.pathname.slice(prefix.length))
      : { kind: "error", route: "unknown", error: new RegistryError("ROUTE_UNKNOWN", `no endpoint at ${url.pathname}`) };
    observe(app, ctx, match.route);
    if (match.kind === "error") {
      if (match.allow) res.setHeader("Allow", match.allow);
      fail(app, ctx, door === "siblings" ? siblingRefusal(app, ctx, door, match.route, String(req.headers[SIBLING_HEADER])) : match.error);
      return;
    }
    ctx.params = match.params;
    const { handler, required } = match;
    if (app.access.ownHop && req.headers[app.access.ownHop.header] === app.access.ownHop.value) {
      fail(app, ctx, new RegistryError("UNAVAILABLE", "mirror loop: this request came from this very mirror; its proxy.remoteurl leads back to it (directly or through a load balancer that lists it): point it at the primary"));
      return;
    }
    if (app.access.readOnly.enabled && method !== "GET" && method !== "HEAD") {
      fail(app, ctx, new RegistryError("UNSUPPORTED", "the registry is in read-only mode (storage.maintenance.readonly): pulls work, pushes and deletes do not"));
      return;
    }
    const signature = req.headers[SIBLING_HEADER];
    if (signature !== undefined) {
      const refused = siblingRefusal(app, ctx, door, match.route, String(signature));
      if (refused) return fail(app, ctx, refused);
      if (app.access.siblings) {
        const from = req.headers[SIBLING_FROM_HEADER];
        const rate = Number(req.headers[SIBLING_RATE_HEADER]);
        ctx.registry = app.access.siblings.namespaceFor({ from: typeof from === "string" ? from : undefined, rate: Number.isSafeInteger(rate) && rate > 0 ? rate : undefined });
        ctx.fromSibling = true;
        keepSiblingWaiting(res, app.access.siblings.heartbeat);
      }
      handler(ctx).catch((err: unknown) => fail(app, ctx, err));
      return;
    }
    const { mirrored } = app.access;
    const writeRefused = required === "public" || !mirrored ? Promise.resolve(undefined) : mirrored.writeRefusal(required);
    writeRefused
      .then(async (refused) => {
        if (refused) throw refused;
        return authorize(app, ctx, required);
      })
      .then(async (decision) => {
        if (decision.ok) return handler(ctx);
        throw refusal(ctx, decision, req.headers[CONSOLE_HEADER] !== undefined);
      })
      .catch((err: unknown) => fail(app, ctx, err));
  };
}

/**
 * `tls`: the options tlsServerOptions built from http.tls, when the registry serves HTTPS.
 * `door`: the users' listener at http.addr, or the siblings' at proxy.siblings.addr.
 */
export async function startServer(app: AppContext, limits: ConnectionLimits = DEFAULT_LIMITS, tls?: TlsOptions, door: Door = "users"): Promise<RunningServer> {
  const listener = requestListener(app, door);
  // Node checks the headers deadline on this interval (30 s by default).
  const options = { connectionsCheckingInterval: Math.min(limits.headersMs, 30_000) };
  const server = tls ? https().createServer({ ...options, ...tls }, listener) : http.createServer(options, listener);
  // Uploads may take as long as they take; idleness is what ends a connection.
  server.requestTimeout = 0;
  // A body is asked for (100 Continue) only once a handler reads it (respond.ts).
  server.on("checkContinue", listener);
  server.headersTimeout = limits.headersMs;
  server.keepAliveTimeout = 75_000;
  server.setTimeout(limits.idleMs, (socket) => socket.destroy());
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    // Malformed requests, oversized headers, failed TLS handshakes: answer like node would, and never crash.
    if (!socket.writable) return socket.destroy();
    const status = err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
  const { target, key } = listenTarget(app, door);
  return listen(server, target, tls ? "https" : "http", { key, log: app.telemetry.log });
}

function listenTarget(app: AppContext, door: Door): { target: string | { path: string }; key: string } {
  if (door === "users") return { target: app.settings.http.net === "unix" ? { path: app.settings.http.addr } : app.settings.http.addr, key: "http.addr" };
  const addr = app.access.siblings?.addr;
  if (addr === undefined) throw new Error("a siblings' listener needs proxy.siblings.addr");
  return { target: addr, key: "proxy.siblings.addr" };
}

