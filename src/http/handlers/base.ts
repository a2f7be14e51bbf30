import type { RequestContext } from "../context.js";
import { sendJson } from "../respond.js";

/** GET /v2/: the API version check clients make first. */
export async function apiBase(ctx: RequestContext): Promise<void> {
  sendJson(ctx, 200, {});
}
