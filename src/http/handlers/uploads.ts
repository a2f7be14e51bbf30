import type { BlobDescriptor } from "../../registry/blobs.js";
import { parseDigest, type Digest } from "../../registry/digest.js";
import { RegistryError } from "../../registry/errors.js";
import { isRepositoryName, type RepositoryName } from "../../registry/names.js";
import { packUploadState, unpackUploadState } from "../../registry/upload-state.js";
import type { Repository } from "../../registry/repository.js";
import type { UploadStatus } from "../../registry/uploads.js";
import type { RequestContext } from "../context.js";
import { parseContentRange } from "../range.js";
import { notifyBlob } from "../notify.js";
import { hasBody, incomingBody, sendEmpty } from "../respond.js";
import { baseUrl, blobUrl, uploadUrl } from "../urls.js";
import { repositoryOf } from "./common.js";

function queryDigest(ctx: RequestContext, name = "digest"): Digest | undefined {
  const value = ctx.url.searchParams.get(name);
  if (value === null) return undefined;
  const parsed = parseDigest(value);
  if (!parsed.ok) throw new RegistryError("DIGEST_INVALID", parsed.reason);
  return parsed.digest;
}

/** distribution's Range header for an upload: "0-<last byte>", and "0-0" when empty. */
function uploadRange(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}

/** 202 with the upload's Location (carrying signed state), Range and id. */
function sendUploadStatus(ctx: RequestContext, status: UploadStatus, code: number): void {
  const state = packUploadState(ctx.app.settings.http.secret, {
    Name: status.name,
    UUID: status.id,
    Offset: status.size,
    StartedAt: status.startedAt.toISOString(),
  });
  sendEmpty(ctx, code, {
    Location: uploadUrl(baseUrl(ctx.app.settings.http, ctx.req), status.name, status.id, state),
    Range: uploadRange(status.size),
    "Docker-Upload-UUID": status.id,
  });
}

/** 201 for a blob now in the repository, pushed or mounted (`from`). */
function sendBlobCreated(ctx: RequestContext, blob: BlobDescriptor, from?: RepositoryName): void {
  sendEmpty(ctx, 201, {
    Location: blobUrl(baseUrl(ctx.app.settings.http, ctx.req), ctx.params.name ?? "", blob.digest),
    "Docker-Content-Digest": blob.digest,
  });
  notifyBlob(ctx, from === undefined ? "push" : "mount", blob, from);
}

/** Counts the request in registry_uploads_in_progress while its body is received. */
async function receiving<T>(ctx: RequestContext, task: () => Promise<T>): Promise<T> {
  const gauge = ctx.app.telemetry.metrics.uploadsInProgress;
  gauge.inc();
  try {
    return await task();
  } finally {
    gauge.dec();
  }
}

/** A `_state` that is present must be ours (or a peer's with the same secret) and name this upload. */
function checkState(ctx: RequestContext): void {
  const token = ctx.url.searchParams.get("_state");
  if (token === null) return;
  const state = unpackUploadState(ctx.app.settings.http.secret, token);
  if (!state || state.Name !== ctx.params.name || state.UUID !== ctx.params.upload) {
    throw new RegistryError("BLOB_UPLOAD_INVALID", "the upload state in the URL is invalid or belongs to another upload");
  }
}

/**
 * POST /v2/<name>/blobs/uploads/: a cross-repository mount (?mount=&from=), a monolithic
 * upload (?digest= with the body), or a new session.
 */
export async function startUpload(ctx: RequestContext): Promise<void> {
  if (ctx.app.lifecycle.draining) {
    // Sessions already running may finish; a new one belongs on an instance that stays.
    ctx.res.setHeader("Retry-After", "1");
    throw new RegistryError("UNAVAILABLE", "this registry instance is shutting down; retry and another instance will take the upload");
  }
  const repo = repositoryOf(ctx);
  const mount = queryDigest(ctx, "mount");
  const from = ctx.url.searchParams.get("from");
  if (mount && from !== null) {
    if (!isRepositoryName(from)) throw new RegistryError("NAME_INVALID", `invalid repository name ${JSON.stringify(from)}`, { name: from });
    const mounted = await repo.mountBlob(from as RepositoryName, mount);
    if (mounted) {
      sendBlobCreated(ctx, mounted, from as RepositoryName);
      return;
    }
    // Not mountable: the spec asks for an ordinary upload session instead.
  }

  const digest = queryDigest(ctx);
  const status = await repo.startUpload();
  if (digest) {
    try {
      const blob = await receiving(ctx, () => repo.completeUpload(status.id, digest, incomingBody(ctx)));
      sendBlobCreated(ctx, blob);
    } catch (err) {
      await repo.cancelUpload(status.id).catch(() => undefined);
      throw err;
    }
    return;
  }
  sendUploadStatus(ctx, status, 202);
}

/** The route's upload session, and the repository it belongs to. */
async function requireUpload(ctx: RequestContext): Promise<{ repo: Repository; current: UploadStatus }> {
  checkState(ctx);
  const repo = repositoryOf(ctx);
  const current = await repo.uploadStatus(ctx.params.upload ?? "");
  if (!current) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", `upload ${ctx.params.upload} is unknown to this repository`);
  return { repo, current };
}

/** GET /v2/<name>/blobs/uploads/<id>: how far the upload got. */
export async function getUploadStatus(ctx: RequestContext): Promise<void> {
  sendUploadStatus(ctx, (await requireUpload(ctx)).current, 204);
}

/**
 * The chunk's declared start, if a Content-Range came with it; a declared range must agree
 * with Content-Length.
 */
function chunkStart(ctx: RequestContext): number | undefined {
  const header = ctx.req.headers["content-range"];
  if (header === undefined) return undefined;
  const range = parseContentRange(header);
  if (!range) throw new RegistryError("RANGE_INVALID", `malformed Content-Range ${JSON.stringify(header)}`);
  const length = ctx.req.headers["content-length"];
  if (length !== undefined && Number(length) !== range.end - range.start + 1) {
    throw new RegistryError("SIZE_INVALID", `Content-Range ${header} does not match Content-Length ${length}`);
  }
  return range.start;
}

/** PATCH /v2/<name>/blobs/uploads/<id>: a chunk (with Content-Range) or a streamed body. */
export async function patchUpload(ctx: RequestContext): Promise<void> {
  const { repo, current } = await requireUpload(ctx);
  const start = chunkStart(ctx);
  const status = await receiving(ctx, () => repo.appendUpload(current.id, incomingBody(ctx), start));
  sendUploadStatus(ctx, status, 202);
}

/** PUT /v2/<name>/blobs/uploads/<id>?digest=: the last chunk, if any, then verify and store. */
export async function completeUpload(ctx: RequestContext): Promise<void> {
  const { repo, current } = await requireUpload(ctx);
  const digest = queryDigest(ctx);
  if (!digest) throw new RegistryError("DIGEST_INVALID", "the digest query parameter is required to complete an upload");
  const body = hasBody(ctx.req) ? incomingBody(ctx) : undefined;
  if (body) {
    const start = chunkStart(ctx);
    if (start !== undefined && start !== current.size) {
      throw new RegistryError("RANGE_INVALID", `chunk starts at ${start} but the upload has ${current.size} bytes`, { size: current.size });
    }
  }
  const blob = await receiving(ctx, () => repo.completeUpload(current.id, digest, body));
  sendBlobCreated(ctx, blob);
}

/** DELETE /v2/<name>/blobs/uploads/<id>: abandon the upload. */
export async function cancelUpload(ctx: RequestContext): Promise<void> {
  const { repo, current } = await requireUpload(ctx);
  await repo.cancelUpload(current.id);
  sendEmpty(ctx, 204);
}
