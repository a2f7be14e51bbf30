import type { ServerResponse } from "node:http";
import type { ErrorCode, RegistryError } from "../registry/errors.js";

interface ErrorSpec {
  status: number;
  /** The code on the wire, when ours is a finer-grained name for a spec code. */
  wire?: string;
  message: string;
}

/**
 * Every error a client can see: OCI distribution-spec / Docker registry v2 codes, their HTTP
 * statuses as distribution sends them, and default messages. The only place statuses live.
 */
const ERRORS: Record<ErrorCode, ErrorSpec> = {
  BLOB_UNKNOWN: { status: 404, message: "blob unknown to registry" },
  BLOB_UPLOAD_INVALID: { status: 400, message: "blob upload invalid" },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: "blob upload unknown to registry" },
  DIGEST_INVALID: { status: 400, message: "provided digest did not match uploaded content" },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: "manifest references a blob unknown to the repository" },
  MANIFEST_INVALID: { status: 400, message: "manifest invalid" },
  MANIFEST_UNKNOWN: { status: 404, message: "manifest unknown" },
  MANIFEST_TOO_BIG: { status: 413, wire: "SIZE_INVALID", message: "manifest too large" },
  NAME_INVALID: { status: 400, message: "invalid repository name" },
  NAME_UNKNOWN: { status: 404, message: "repository name not known to registry" },
  SIZE_INVALID: { status: 400, message: "provided length did not match content length" },
  TAG_INVALID: { status: 400, message: "manifest tag did not match URI" },
  // Upload chunks out of order: distribution-spec "416 Requested Range Not Satisfiable".
  RANGE_INVALID: { status: 416, wire: "BLOB_UPLOAD_INVALID", message: "chunk out of order" },
  RANGE_NOT_SATISFIABLE: { status: 416, message: "requested range not satisfiable" },
  PAGINATION_NUMBER_INVALID: { status: 400, message: "invalid number of results requested" },
  // The web console's API: a body it cannot read.
  REQUEST_INVALID: { status: 400, wire: "UNSUPPORTED", message: "malformed request" },
  UNAUTHORIZED: { status: 401, message: "authentication required" },
  DENIED: { status: 403, message: "requested access to the resource is denied" },
  UNSUPPORTED: { status: 405, message: "the operation is unsupported" },
  TOOMANYREQUESTS: { status: 429, message: "too many requests" },
  UNAVAILABLE: { status: 503, message: "service unavailable" },
  // RFC 4918's 507: the store has no room for what the request would write.
  STORAGE_FULL: { status: 507, wire: "UNAVAILABLE", message: "insufficient storage" },
  // RFC 9110's 421: a sibling mirror's request this one leaves to upstream, its link being much slower (proxy/relay.ts).
  MISDIRECTED: { status: 421, wire: "UNAVAILABLE", message: "ask another server" },
  ROUTE_UNKNOWN: { status: 404, wire: "NOT_FOUND", message: "no such endpoint" },
  METHOD_UNKNOWN: { status: 405, wire: "UNSUPPORTED", message: "method not allowed" },
  UNKNOWN: { status: 500, message: "unknown error" },
};

/** Writes a spec error response; HEAD responses carry the status and headers only. */
export function sendError(res: ServerResponse, err: RegistryError, head = false): void {
  const spec = ERRORS[err.code];
  const entry: Record<string, unknown> = { code: spec.wire ?? err.code, message: err.message || spec.message };
  if (err.detail !== undefined) entry.detail = err.detail;
  const body = JSON.stringify({ errors: [entry] });
  res.statusCode = spec.status;
  for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(head ? undefined : body);
}

