import { createHmac, timingSafeEqual } from "node:crypto";

/** Carries a mirror's signature on the requests it sends a sibling mirror. */
export const SIBLING_HEADER = "x-lain-sibling";

/** Names the asking mirror (its cluster.advertise), so that the one it asks can send the next ones to it (proxy/relay.ts). */
export const SIBLING_FROM_HEADER = "x-lain-sibling-from";

/** The asking mirror's receive rate in bytes/s, when it has learnt one: a much slower mirror is never its parent (proxy/relay.ts). */
export const SIBLING_RATE_HEADER = "x-lain-sibling-rate";

/**
 * How far a signature's time may be from the receiver's clock. Short: a captured request is of
 * use to nobody for long, and it can only ever read what it named.
 */
export const SIGNATURE_VALIDITY_MS = 30_000;

function mac(secret: string, method: string, path: string, time: number): string {
  return createHmac("sha256", secret).update(`lain-sibling\n${method}\n${path}\n${time}`).digest("hex");
}

/** The header value for a request (method, path with query) signed now with http.secret. */
export function signSiblingRequest(secret: string, method: string, path: string, now = Date.now()): string {
  return `${now}.${mac(secret, method, path, now)}`;
}

/** Why a sibling's signature is not accepted, or undefined when it is. */
export function siblingSignatureProblem(secret: string, method: string, path: string, value: string, now = Date.now()): string | undefined {
  const match = /^(\d{1,15})\.([0-9a-f]{64})$/.exec(value);
  if (!match) return "the sibling signature is malformed";
  const time = Number(match[1]);
  if (Math.abs(now - time) > SIGNATURE_VALIDITY_MS) return "the sibling signature has expired (or the clocks differ by more than 30 s)";
  const expected = Buffer.from(mac(secret, method, path, time), "hex");
  if (!timingSafeEqual(expected, Buffer.from(match[2] as string, "hex"))) return "the sibling signature does not match (is http.secret the same on every mirror?)";
  return undefined;
}
