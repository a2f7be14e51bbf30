import type { EventAction, EventTarget } from "../notifications/events.js";
import type { BlobDescriptor } from "../registry/blobs.js";
import type { Digest } from "../registry/digest.js";
import type { Descriptor, ManifestInfo } from "../registry/manifest-format.js";
import type { RequestContext } from "./context.js";
import { baseUrl, blobUrl, manifestUrl } from "./urls.js";

/** Hands an event about this request to the notifier, if notifications are configured. */
function publish(ctx: RequestContext, action: EventAction, target: EventTarget): void {
  const notifier = ctx.app.notifier;
  if (!notifier) return;
  const { req } = ctx;
  const addr = ctx.remoteAddress;
  notifier.publish({
    action,
    target,
    request: {
      id: ctx.id,
      ...(addr !== undefined ? { addr } : {}),
      ...(req.headers.host !== undefined ? { host: req.headers.host } : {}),
      method: ctx.method,
      useragent: req.headers["user-agent"] ?? "",
    },
    actor: ctx.user !== undefined ? { name: ctx.user } : {},
  });
}

/** Blobs carry no media type in the store; distribution's events say application/octet-stream. */
export function notifyBlob(ctx: RequestContext, action: EventAction, blob: BlobDescriptor, fromRepository?: string): void {
  const repository = ctx.params.name ?? "";
  publish(ctx, action, {
    mediaType: "application/octet-stream",
    size: blob.size,
    digest: blob.digest,
    length: blob.size,
    repository,
    ...(fromRepository !== undefined ? { fromRepository } : {}),
    url: blobUrl(baseUrl(ctx.app.settings.http, ctx.req), repository, blob.digest),
  });
}

export interface NotifiedManifest {
  digest: Digest;
  mediaType: string;
  size: number;
  tag?: string;
  /** What it references, for notifications.events.includereferences. */
  info?: () => ManifestInfo;
}

export function notifyManifest(ctx: RequestContext, action: EventAction, manifest: NotifiedManifest): void {
  const notifier = ctx.app.notifier;
  if (!notifier) return;
  const repository = ctx.params.name ?? "";
  const info = notifier.config.includeReferences ? manifest.info?.() : undefined;
  const references: Descriptor[] | undefined = info && [...info.blobs, ...info.children];
  publish(ctx, action, {
    mediaType: manifest.mediaType,
    size: manifest.size,
    digest: manifest.digest,
    length: manifest.size,
    repository,
    url: manifestUrl(baseUrl(ctx.app.settings.http, ctx.req), repository, manifest.digest),
    ...(manifest.tag !== undefined ? { tag: manifest.tag } : {}),
    ...(references ? { references } : {}),
  });
}

/** A deleted blob, manifest or tag: distribution sends only what names it. */
export function notifyDeleted(ctx: RequestContext, what: { digest: Digest } | { tag: string }): void {
  publish(ctx, "delete", { repository: ctx.params.name ?? "", ...what });
}
