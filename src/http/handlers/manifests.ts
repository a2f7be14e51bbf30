import type { IncomingMessage } from "node:http";
import { isDigest, type Digest } from "../../registry/digest.js";
import { RegistryError, warning } from "../../registry/errors.js";
import { parseManifest } from "../../registry/manifest-format.js";
import { MANIFEST_MAX_BYTES, type StoredManifest } from "../../registry/manifests.js";
import { isIndexType, MANIFEST_MEDIA_TYPES } from "../../registry/media-types.js";
import type { Tag } from "../../registry/names.js";
import type { Repository } from "../../registry/repository.js";
import type { RequestContext } from "../context.js";
import { notifyDeleted, notifyManifest } from "../notify.js";
import { readBody, sendBody, sendEmpty } from "../respond.js";
import { baseUrl, manifestUrl } from "../urls.js";
import { repositoryOf, requireDeleteEnabled, unknownTo } from "./common.js";

function acceptedTypes(req: IncomingMessage): string[] {
  const raw = req.headers.accept;
  if (!raw) return [];
  return raw
    .split(",")
    .map((part) => part.split(";")[0]?.trim().toLowerCase() ?? "")
    .filter((t) => t !== "");
}

interface IndexJson {
  manifests?: Array<{ digest?: string; mediaType?: string; platform?: { os?: string; architecture?: string } }>;
}

/**
 * Content negotiation as distribution does it: a client that names manifest types but not the
 * stored one gets, for an index fetched by tag, its linux/amd64 image (what pre-index clients
 * expect); otherwise MANIFEST_UNKNOWN. A client naming no manifest type gets what is stored.
 */
async function negotiate(repo: Repository, manifest: StoredManifest, accepts: string[], byTag: boolean): Promise<StoredManifest> {
  const known = accepts.filter((t) => MANIFEST_MEDIA_TYPES.includes(t));
  if (known.length === 0 || accepts.includes("*/*") || accepts.includes(manifest.mediaType)) return manifest;
  if (byTag && isIndexType(manifest.mediaType)) {
    const index = JSON.parse(manifest.content.toString("utf8")) as IndexJson;
    const entry = index.manifests?.find(
      (m) => m.platform?.os === "linux" && m.platform.architecture === "amd64" && known.includes(m.mediaType ?? ""),
    );
    const child = entry?.digest && isDigest(entry.digest) ? await repo.manifest(entry.digest) : undefined;
    if (child) return child.manifest;
  }
  throw new RegistryError("MANIFEST_UNKNOWN", `the manifest is ${manifest.mediaType}, which the Accept header does not allow`, {
    mediaType: manifest.mediaType,
  });
}

/** GET and HEAD /v2/<name>/manifests/<reference>. */
export async function getManifest(ctx: RequestContext): Promise<void> {
  const repo = repositoryOf(ctx);
  const reference = ctx.params.reference as Tag | Digest;
  const found = await repo.manifest(reference);
  if (!found) {
    throw new RegistryError("MANIFEST_UNKNOWN", `manifest ${reference} is unknown to ${unknownTo(ctx, repo)}`, { reference });
  }
  // RFC 9111 warn-code 110: served from a cache that could not be revalidated.
  if (found.stale) ctx.res.setHeader("Warning", warning(110, `Response is Stale: ${found.stale}`));
  const manifest = await negotiate(repo, found.manifest, acceptedTypes(ctx.req), !isDigest(reference));
  ctx.res.setHeader("Docker-Content-Digest", manifest.digest);
  ctx.res.setHeader("ETag", `"${manifest.digest}"`);
  if (ctx.req.headers["if-none-match"] === `"${manifest.digest}"`) {
    ctx.res.statusCode = 304;
    ctx.res.end();
    return;
  }
  sendBody(ctx, 200, manifest.content, manifest.mediaType);
  // A pull, for storage.retention: the tag's manifest, not a HEAD, not a sibling mirror's fetch.
  if (!ctx.head && !ctx.fromSibling) ctx.app.pulls?.record(repo.name, found.manifest.digest);
  if (!ctx.head) {
    notifyManifest(ctx, "pull", {
      digest: manifest.digest,
      mediaType: manifest.mediaType,
      size: manifest.content.length,
      ...(isDigest(reference) ? {} : { tag: reference }),
      info: () => parseManifest(manifest.content, manifest.mediaType),
    });
  }
}

/** PUT /v2/<name>/manifests/<reference>. */
export async function putManifest(ctx: RequestContext): Promise<void> {
  const repo = repositoryOf(ctx);
  const reference = ctx.params.reference as Tag | Digest;
  const body = await readBody(
    ctx,
    MANIFEST_MAX_BYTES,
    () => new RegistryError("MANIFEST_TOO_BIG", `manifests are limited to ${MANIFEST_MAX_BYTES} bytes`),
  );
  const contentType = ctx.req.headers["content-type"];
  const { digest, info } = await repo.putManifest(reference, body, contentType);
  const headers: Record<string, string> = {
    Location: manifestUrl(baseUrl(ctx.app.settings.http, ctx.req), repo.name, digest),
    "Docker-Content-Digest": digest,
  };
  // OCI distribution-spec 1.1: tells the client the registry indexed the subject itself.
  if (info.subject) headers["OCI-Subject"] = info.subject.digest;
  sendEmpty(ctx, 201, headers);
  notifyManifest(ctx, "push", {
    digest,
    mediaType: info.mediaType,
    size: body.length,
    ...(isDigest(reference) ? {} : { tag: reference }),
    info: () => info,
  });
}

/** DELETE /v2/<name>/manifests/<digest> deletes the manifest; by tag, only the tag. */
export async function deleteManifest(ctx: RequestContext): Promise<void> {
  requireDeleteEnabled(ctx);
  const repo = repositoryOf(ctx);
  const reference = ctx.params.reference as Tag | Digest;
  const deleted = isDigest(reference) ? await repo.deleteManifest(reference) : await repo.untag(reference);
  if (!deleted) {
    throw new RegistryError("MANIFEST_UNKNOWN", `manifest ${reference} is unknown to repository ${repo.name}`, { reference });
  }
  sendEmpty(ctx, 202);
  notifyDeleted(ctx, isDigest(reference) ? { digest: reference } : { tag: reference });
}

