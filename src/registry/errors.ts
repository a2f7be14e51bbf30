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
  | "STORAGE_FULL"
  | "MISDIRECTED"
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
    /** Headers the error response carries (a Warning: the answer was given without the peer). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "RegistryError";
  }
}

/** An RFC 9111 Warning header value: a code and a text, quoted safely. */
export function warning(code: 110 | 112, text: string): string {
  return `${code} - "${text.replace(/["\\\r\n]/g, "'")}"`;
}

/** What was thrown, as an Error (a rejection may carry anything). */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
