/** An inclusive byte range. */
export interface ByteRange {
  start: number;
  end: number;
}

export type RangeRequest =
  | { kind: "whole" }
  | { kind: "partial"; range: ByteRange }
  | { kind: "unsatisfiable" };

/** The one form of Range served: a single range, `a-b`, `a-` or the suffix `-n`. */
const SINGLE_RANGE = /^bytes=(\d*)-(\d*)$/;

/**
 * The Range header a GET's answer follows (RFC 9110 §13.1.5): none when If-Range names another
 * version. Only a strong entity-tag can match; a date cannot be checked, a blob having no
 * Last-Modified, so it means the whole blob.
 */
export function effectiveRange(range: string | string[] | undefined, ifRange: string | string[] | undefined, etag: string): string | undefined {
  if (typeof range !== "string") return undefined;
  return ifRange === undefined || (typeof ifRange === "string" && ifRange.trim() === etag) ? range : undefined;
}

function singleRange(header: string): RegExpExecArray | undefined {
  const match = SINGLE_RANGE.exec(header.trim());
  return match && !(match[1] === "" && match[2] === "") ? match : undefined;
}

/** Whether a Range header asks for one range (served as a 206, or refused as unsatisfiable). */
export function isSingleRange(header: string | undefined): boolean {
  return header !== undefined && singleRange(header) !== undefined;
}

/**
 * A GET's Range header (RFC 9110 §14.1.2) for a blob of `size` bytes. Only single ranges are
 * served; a multi-range or malformed header is ignored, which the RFC allows.
 */
export function parseRangeHeader(header: string | undefined, size: number): RangeRequest {
  const match = header === undefined ? undefined : singleRange(header);
  if (!match) return { kind: "whole" };
  const [, first = "", last = ""] = match;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const start = Number(first);
  if (start >= size) return { kind: "unsatisfiable" };
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return { kind: "whole" };
  return { kind: "partial", range: { start, end } };
}

/**
 * An upload chunk's Content-Range: "<start>-<end>" as the distribution-spec writes it, or the
 * RFC form "bytes <start>-<end>/<total|*>". undefined when malformed.
 */
export function parseContentRange(header: string): ByteRange | undefined {
  const match = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  return Number.isSafeInteger(start) && Number.isSafeInteger(end) && end >= start ? { start, end } : undefined;
}
