import type { RequestContext } from "../context.js";
import { VERSION } from "../../version.js";
import { sendJson } from "../respond.js";

/** GET /v2/: the API version check clients make first. */
export async function apiBase(ctx: RequestContext): Promise<void> {
  sendJson(ctx, 200, {});
}

/**
 * GET /health: the registry is up, and how its store and settings stand (storage, auth, etcd,
 * cluster, a mirror's upstream) and the version. "degraded" (200) when something needs an
 * operator's look yet requests are served (a mirror whose peer is down serves what it caches);
 * 503 when the load balancer should send nothing new: draining, or the store unreachable.
 */
export async function health(ctx: RequestContext): Promise<void> {
  const details = (await ctx.app.telemetry.health?.()) ?? {};
  const degraded = Object.values(details).some((d) => typeof d === "object" && d !== null && (d as { error?: unknown }).error);
  const storage = details.storage as { reachable?: boolean } | undefined;
  const down = ctx.app.lifecycle.draining ? "draining" : storage?.reachable === false ? "unavailable" : undefined;
  sendJson(ctx, down ? 503 : 200, { status: down ?? (degraded ? "degraded" : "ok"), version: VERSION, draining: ctx.app.lifecycle.draining, ...details });
}
