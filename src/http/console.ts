import type { Access } from "../auth/access.js";
import { RegistryError } from "../registry/errors.js";
import { isRepositoryName, type RepositoryName } from "../registry/names.js";
import type { RequestContext } from "./context.js";
import { pageSize, readBody, sendJson } from "./respond.js";

const CATALOG: Access = { type: "registry", name: "catalog", actions: ["*"] };
/** Starting a storage analysis (a GC dry run) needs the delete permission. */
const ANALYZE: Access = { type: "registry", name: "catalog", actions: ["delete"] };

/** Who may see what: the console API asks the same authenticator as the registry API. */
export type ConsoleAuthorize = (ctx: RequestContext, required: Access[]) => Promise<void>;

/** GET/HEAD of the console's static files, and its JSON API under api/. */
export async function serveConsole(ctx: RequestContext, authorize: ConsoleAuthorize): Promise<void> {
  const site = ctx.app.console;
  if (!site) throw new RegistryError("ROUTE_UNKNOWN", `no endpoint at ${ctx.url.pathname}`);
  const rest = ctx.url.pathname.slice(site.path.length);
  if (!rest.startsWith("api/")) return sendAsset(ctx, rest === "" ? "index.html" : rest);
  const { api } = site;
  const route = `${ctx.method} ${rest.slice("api/".length)}`;
  if (route === "GET info") return sendJson(ctx, 200, api.info());
  if (route === "POST token") return sendJson(ctx, 200, await api.token(await readCredentials(ctx)));
  if (route === "GET repositories") {
    await authorize(ctx, [CATALOG]);
    const last = ctx.url.searchParams.get("last") ?? undefined;
    return sendJson(ctx, 200, await api.repositories(Math.min(pageSize(ctx.url) ?? 10_000, 10_000), last));
  }
  if (route === "GET overview") {
    await authorize(ctx, [CATALOG]);
    return sendJson(ctx, 200, await api.overview());
  }
  if (route === "GET storage" || route === "POST storage") {
    await authorize(ctx, [ctx.method === "POST" ? ANALYZE : CATALOG]);
    return sendJson(ctx, ctx.method === "POST" ? 202 : 200, ctx.method === "POST" ? api.analysis.start() : api.storage());
  }
  const retention = /^GET retention\/(.+)$/.exec(route);
  if (retention?.[1] !== undefined) {
    const name = retention[1];
    if (!isRepositoryName(name)) throw new RegistryError("NAME_INVALID", `invalid repository name ${JSON.stringify(name)}`, { name });
    await authorize(ctx, [{ type: "repository", name, actions: ["pull"] }]);
    return sendJson(ctx, 200, await api.retention(name as RepositoryName));
  }
  const tags = /^GET tags\/(.+)$/.exec(route);
  if (tags?.[1] !== undefined) {
    const name = tags[1];
    if (!isRepositoryName(name)) throw new RegistryError("NAME_INVALID", `invalid repository name ${JSON.stringify(name)}`, { name });
    await authorize(ctx, [{ type: "repository", name, actions: ["pull"] }]);
    const page = await api.tags(name as RepositoryName, pageSize(ctx.url) ?? 100, ctx.url.searchParams.get("last") ?? undefined);
    if (!page) throw new RegistryError("NAME_UNKNOWN", `repository ${name} has no tags in this store`, { name });
    return sendJson(ctx, 200, page);
  }
  throw new RegistryError("ROUTE_UNKNOWN", `no console endpoint ${route}`);
}

function sendAsset(ctx: RequestContext, name: string): void {
  const asset = ctx.app.console?.assets.get(name);
  if (!asset || (ctx.method !== "GET" && ctx.method !== "HEAD")) throw new RegistryError("ROUTE_UNKNOWN", `no console file ${name}`);
  const { res } = ctx;
  res.setHeader("ETag", asset.etag);
  res.setHeader("Cache-Control", "no-cache");
  // Everything the console loads is its own: no inline scripts, no other origin.
  res.setHeader("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  if (ctx.req.headers["if-none-match"] === asset.etag) {
    res.writeHead(304).end();
    return;
  }
  res.writeHead(200, { "Content-Type": asset.type, "Content-Length": asset.body.length });
  res.end(ctx.head ? undefined : asset.body);
}

async function readCredentials(ctx: RequestContext): Promise<{ username: string; password: string; scope: string }> {
  const body = await readBody(ctx, 16 * 1024, () => new RegistryError("SIZE_INVALID", "the login request is too large"));
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    throw new RegistryError("REQUEST_INVALID", "the login request is not JSON");
  }
  const { username, password, scope } = (value ?? {}) as Record<string, unknown>;
  if (typeof username !== "string" || typeof password !== "string" || typeof scope !== "string") {
    throw new RegistryError("REQUEST_INVALID", "the login request needs username, password and scope");
  }
  return { username, password, scope };
}
