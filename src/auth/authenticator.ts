import type { Access } from "./access.js";

export type AuthDecision =
  | { ok: true; user: string | undefined }
  | {
      ok: false;
      /** The WWW-Authenticate header value. */
      challenge: string;
      code: "UNAUTHORIZED" | "DENIED";
      message: string;
      detail: Access[];
    };

/** Decides a request from its Authorization header and the access it needs; no storage I/O. */
export interface Authenticator {
  authorize(authorization: string | undefined, required: Access[]): Promise<AuthDecision>;
}
