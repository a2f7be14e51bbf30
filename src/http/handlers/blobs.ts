import type { BlobDescriptor } from "../../registry/blobs.js";
import { RegistryError } from "../../registry/errors.js";
import type { RequestContext } from "../context.js";
import { notifyBlob, notifyDeleted } from "../notify.js";
import { effectiveRange, isSingleRange, parseRangeHeader } from "../range.js";
import { sendEmpty, streamBody } from "../respond.js";
import { digestParam, repositoryOf, requireDeleteEnabled, unknownTo } from "./common.js";

/** GET and HEAD /v2/<name>/blobs/<digest>, with single byte ranges. */
export async function getBlob(ctx: RequestContext): Promise<void> {
  const digest = digestParam(ctx);
  const repo = repositoryOf(ctx);
  const { req, res } = ctx;
  const etag = `"${digest}"`;
  const rangeHeader = effectiveRange(req.headers.range, req.headers["if-range"], etag);
  // A HEAD needs only the size: a mirror asks its peer instead of fetching the blob.
  const content = ctx.head ? undefined : await repo.fetchBlob(digest, isSingleRange(rangeHeader) ? rangeHeader : undefined);
  const blob: BlobDescriptor | undefined = ctx.head ? await repo.statBlob(digest, !ctx.app.access.readOnly.enabled) : content;
  if (!blob) throw new RegistryError("BLOB_UNKNOWN", `blob ${digest} is unknown to ${unknownTo(ctx, repo)}`, { digest });

  const describe = () => {
    res.setHeader("Docker-Content-Digest", digest);
    res.setHeader("ETag", etag);
    res.setHeader("Accept-Ranges", "bytes");
    // Content-addressed: the bytes behind a digest never change.
    res.setHeader("Cache-Control", "max-age=31536000");
    res.setHeader("Content-Type", "application/octet-stream");
  };
  if (req.headers["if-none-match"] === etag) {
    describe();
    res.statusCode = 304;
    res.end();
    return;
  }

  if (content) {
    // Bytes flow from the store (a presigned URL), not through this process.
    const redirect = await content.redirectURL();
    if (redirect) {
      describe();
      res.statusCode = 307;
      res.setHeader("Location", redirect);
      res.setHeader("Content-Length", 0);
      res.end();
      notifyBlob(ctx, "pull", blob);
      return;
    }
  }

  const range = parseRangeHeader(rangeHeader, blob.size);
  if (range.kind === "unsatisfiable") {
    res.setHeader("Content-Range", `bytes */${blob.size}`);
    throw new RegistryError("RANGE_NOT_SATISFIABLE", `range ${rangeHeader} is outside the blob's ${blob.size} bytes`);
  }
  const { start, end } = range.kind === "partial" ? range.range : { start: 0, end: blob.size - 1 };
  // Opened before any header is set: data that turns out to be gone is a plain 404.
  const body = content && blob.size > 0 ? await content.open(start, end + 1) : undefined;
  describe();
  if (range.kind === "partial") {
    res.statusCode = 206;
    res.setHeader("Content-Range", `bytes ${start}-${end}/${blob.size}`);
  } else {
    res.statusCode = 200;
  }
  res.setHeader("Content-Length", end - start + 1);
  if (body) await streamBody(body, res);
  else res.end();
  if (content) notifyBlob(ctx, "pull", blob);
}

/** DELETE /v2/<name>/blobs/<digest>: unlinks the blob from the repository. */
export async function deleteBlob(ctx: RequestContext): Promise<void> {
  requireDeleteEnabled(ctx);
  const digest = digestParam(ctx);
  const repo = repositoryOf(ctx);
  if (!(await repo.unlinkBlob(digest))) {
    throw new RegistryError("BLOB_UNKNOWN", `blob ${digest} is unknown to repository ${repo.name}`, { digest });
  }
  sendEmpty(ctx, 202);
  notifyDeleted(ctx, { digest });
}
