import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * The `_state` query parameter of an upload's Location, in distribution's format
 * (registry/handlers/hmac.go): base64url(HMAC-SHA256(secret, json) || json). Instances that share
 * http.secret, ours or distribution's, accept each other's upload URLs.
 */
export interface UploadState {
  Name: string;
  UUID: string;
  Offset: number;
  StartedAt: string;
}

const MAC_LENGTH = 32;

export function packUploadState(secret: string, state: UploadState): string {
  const json = Buffer.from(JSON.stringify(state));
  const mac = createHmac("sha256", secret).update(json).digest();
  // Go's base64.URLEncoding keeps the "=" padding, and distribution's decoder requires it.
  return Buffer.concat([mac, json]).toString("base64").replaceAll("+", "-").replaceAll("/", "_");
}

export function unpackUploadState(secret: string, token: string): UploadState | undefined {
  const raw = Buffer.from(token, "base64url");
  if (raw.length <= MAC_LENGTH) return undefined;
  const mac = raw.subarray(0, MAC_LENGTH);
  const json = raw.subarray(MAC_LENGTH);
  const expected = createHmac("sha256", secret).update(json).digest();
  if (!timingSafeEqual(mac, expected)) return undefined;
  try {
    const state = JSON.parse(json.toString("utf8")) as Partial<UploadState>;
    if (typeof state.Name !== "string" || typeof state.UUID !== "string" || typeof state.Offset !== "number") {
      return undefined;
    }
    return { Name: state.Name, UUID: state.UUID, Offset: state.Offset, StartedAt: String(state.StartedAt ?? "") };
  } catch {
    return undefined;
  }
}
