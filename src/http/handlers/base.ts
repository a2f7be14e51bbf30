import type { RequestContext } from "../context.js";
import { sendJson } from "../respond.js";

/** GET /v2/: the API version check clients make first. */
export async function apiBase(ctx: RequestContext): Promise<void> {
  sendJson(ctx, 200, {});
}

/**
 * GET /health: the registry is up, and how its settings stand (auth, etcd). "degraded" when
 * something needs an operator's look, yet requests are still served.
 */
export async function health(ctx: RequestContext): Promise<void> {
  const details = ctx.app.health?.() ?? {};
  const degraded = Object.values(details).some((d) => typeof d === "object" && d !== null && (d as { error?: unknown }).error);
  sendJson(ctx, 200, { status: degraded ? "degraded" : "ok", ...details });
}
