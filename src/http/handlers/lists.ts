import { RegistryError } from "../../registry/errors.js";
import { MediaType } from "../../registry/media-types.js";
import type { RequestContext } from "../context.js";
import { nextLink, pageSize, sendJson } from "../respond.js";
import { digestParam, repositoryOf } from "./common.js";

/** GET /v2/<name>/tags/list?n=&last= */
export async function listTags(ctx: RequestContext): Promise<void> {
  const repo = repositoryOf(ctx);
  const all = await repo.listTags();
  if (!all) throw new RegistryError("NAME_UNKNOWN", `repository ${repo.name} is not known to this registry`, { name: repo.name });
  const n = pageSize(ctx.url);
  const last = ctx.url.searchParams.get("last");
  const after = last ? all.filter((tag) => tag > last) : all;
  const tags = n === undefined ? after : after.slice(0, n);
  const lastTag = tags[tags.length - 1];
  if (n !== undefined && lastTag !== undefined && after.length > tags.length) {
    ctx.res.setHeader("Link", nextLink(`${ctx.app.settings.http.prefix}/v2/${repo.name}/tags/list`, lastTag, n));
  }
  sendJson(ctx, 200, { name: repo.name, tags });
}

/** GET /v2/_catalog?n=&last= — n is capped at catalog.maxentries. */
export async function listCatalog(ctx: RequestContext): Promise<void> {
  const max = ctx.app.settings.catalogMaxEntries;
  const n = Math.min(pageSize(ctx.url) ?? max, max);
  const last = ctx.url.searchParams.get("last") ?? undefined;
  const page = n === 0 ? { repositories: [], more: false } : await ctx.registry.catalog(n, last);
  const lastName = page.repositories[page.repositories.length - 1];
  if (page.more && lastName !== undefined) {
    ctx.res.setHeader("Link", nextLink(`${ctx.app.settings.http.prefix}/v2/_catalog`, lastName, n));
  }
  sendJson(ctx, 200, { repositories: page.repositories });
}

/** GET /v2/<name>/referrers/<digest>?artifactType= — always an index, empty when none. */
export async function listReferrers(ctx: RequestContext): Promise<void> {
  const repo = repositoryOf(ctx);
  const artifactType = ctx.url.searchParams.get("artifactType") ?? undefined;
  const manifests = await repo.referrers(digestParam(ctx), artifactType);
  if (artifactType !== undefined) ctx.res.setHeader("OCI-Filters-Applied", "artifactType");
  sendJson(ctx, 200, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, MediaType.ociIndex);
}

