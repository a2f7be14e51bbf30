/** The error codes of the OCI distribution-spec and Docker registry API v2. */
export type ErrorCode =
  | "BLOB_UNKNOWN"
  | "BLOB_UPLOAD_INVALID"
  | "BLOB_UPLOAD_UNKNOWN"
  | "DIGEST_INVALID"
  | "MANIFEST_BLOB_UNKNOWN"
  | "MANIFEST_INVALID"
  | "MANIFEST_UNKNOWN"
  | "MANIFEST_TOO_BIG"
  | "NAME_INVALID"
  | "NAME_UNKNOWN"
  | "SIZE_INVALID"
  | "TAG_INVALID"
  | "RANGE_INVALID"
  | "RANGE_NOT_SATISFIABLE"
  | "ROUTE_UNKNOWN"
  | "METHOD_UNKNOWN"
  | "PAGINATION_NUMBER_INVALID"
  | "REQUEST_INVALID"
  | "UNAUTHORIZED"
  | "DENIED"
  | "UNSUPPORTED"
  | "TOOMANYREQUESTS"
  | "UNAVAILABLE"
  | "UNKNOWN";

/**
 * An expected failure that a client caused or must be told about. The HTTP layer turns it into
 * the spec's status and JSON body (http/errors.ts); anything else thrown is a 500.
 */
export class RegistryError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
    this.name = "RegistryError";
  }
}
