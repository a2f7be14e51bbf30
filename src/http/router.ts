import { parseDigest } from "../registry/digest.js";
import { RegistryError } from "../registry/errors.js";
import { isRepositoryName, isTag } from "../registry/names.js";
import { isUploadId } from "../registry/uploads.js";
import type { Access } from "../auth/access.js";
import type { Handler } from "./context.js";

export type Method = "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE";

/** The scopes a request needs, from its method, route parameters and query. */
export type AccessRule = (method: Method, params: Record<string, string>, url: URL) => Access[];

export interface Route {
  /** The route's name in metrics and logs (distribution's handler names). */
  name: string;
  /** Matched against the path after the prefix; named groups become params. */
  pattern: RegExp;
  methods: Partial<Record<Method, Handler>>;
  /**
   * The scopes a request needs (Docker token auth), checked before the handler runs; "public"
   * routes (health) need no authentication at all.
   */
  access: AccessRule | "public";
}

export type RouteMatch =
  | { kind: "found"; route: string; handler: Handler; params: Record<string, string>; required: Access[] | "public" }
  | { kind: "error"; route: string; error: RegistryError; allow?: string };

/** Rejects parameters outside their grammars before any handler (or storage path) sees them. */
function checkParams(params: Record<string, string>, method: string): RegistryError | undefined {
  const { name, digest, reference, upload } = params;
  if (name !== undefined && !isRepositoryName(name)) {
    return new RegistryError("NAME_INVALID", `invalid repository name ${JSON.stringify(name)}`, { name });
  }
  if (digest !== undefined) {
    const parsed = parseDigest(digest);
    if (!parsed.ok) return new RegistryError("DIGEST_INVALID", parsed.reason);
  }
  if (reference !== undefined) {
    const parsed = reference.includes(":") ? parseDigest(reference) : undefined;
    const valid = parsed ? parsed.ok : isTag(reference);
    // A reference that can name no manifest: reading or deleting it is asking for a manifest that
    // is not there, as distribution answers (its routes do not match it) and the OCI conformance
    // suite expects (".INVALID_MANIFEST_NAME"). Only a PUT, which would create it, is refused.
    if (!valid && method !== "PUT") {
      return new RegistryError("MANIFEST_UNKNOWN", `manifest ${JSON.stringify(reference)} is unknown: it is neither a tag nor a digest`, { reference });
    }
    if (parsed && !parsed.ok) return new RegistryError("DIGEST_INVALID", parsed.reason);
    if (!valid) return new RegistryError("TAG_INVALID", `invalid tag ${JSON.stringify(reference)}`, { tag: reference });
  }
  if (upload !== undefined && !isUploadId(upload)) {
    return new RegistryError("BLOB_UPLOAD_UNKNOWN", `invalid upload id ${JSON.stringify(upload)}`);
  }
  return undefined;
}

export function matchRoute(routes: readonly Route[], method: string, url: URL, path: string): RouteMatch {
  for (const route of routes) {
    const match = route.pattern.exec(path);
    if (!match) continue;
    const handler = route.methods[method as Method];
    if (!handler) {
      return {
        kind: "error",
        route: route.name,
        error: new RegistryError("METHOD_UNKNOWN", `${method} is not allowed on ${path}`),
        allow: Object.keys(route.methods).join(", "),
      };
    }
    const params = { ...(match.groups ?? {}) };
    const error = checkParams(params, method);
    const required = route.access === "public" ? "public" : route.access(method as Method, params, url);
    return error ? { kind: "error", route: route.name, error } : { kind: "found", route: route.name, handler, params, required };
  }
  return { kind: "error", route: "unknown", error: new RegistryError("ROUTE_UNKNOWN", `no endpoint at ${path}`) };
}
