import type { Digest } from "../../registry/digest.js";
import { RegistryError } from "../../registry/errors.js";
import type { RepositoryName } from "../../registry/names.js";
import type { Repository } from "../../registry/repository.js";
import type { RequestContext } from "../context.js";

/** The route's repository; the router has checked the name's grammar. */
export function repositoryOf(ctx: RequestContext): Repository {
  return ctx.registry.repository(ctx.params.name as RepositoryName);
}

export function digestParam(ctx: RequestContext): Digest {
  return ctx.params.digest as Digest;
}

/** storage.delete.enabled gates every DELETE, as in distribution. */
export function requireDeleteEnabled(ctx: RequestContext): void {
  if (!ctx.app.settings.storage.deleteEnabled) {
    throw new RegistryError("UNSUPPORTED", "deletion is disabled in this registry (storage.delete.enabled: false)");
  }
}

/**
 * What a read that found nothing says of where it looked: on a mirror, a repository outside
 * proxy.namespaces is served from what was pushed here alone, and its peer was never asked.
 */
export function unknownTo(ctx: RequestContext, repo: Repository): string {
  const { mirrored } = ctx.app.access;
  return mirrored && !mirrored.includes(repo.name) ? `${repo.name}, which this mirror does not pull through (not in proxy.namespaces)` : `repository ${repo.name}`;
}
