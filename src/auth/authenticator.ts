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
      /** For the access log, never the client: why (no credentials, unknown user, wrong password, ...) and who tried. */
      reason: string;
      user?: string;
    };

/** Decides a request from its Authorization header and the access it needs; no storage I/O. */
export interface Authenticator {
  /** `origin` is the registry's own base URL as the client reached it ("https://host"). */
  authorize(authorization: string | undefined, required: Access[], origin: string): Promise<AuthDecision>;
}

/** One of distribution's access controllers, told apart by `kind` (types only: neither module loads here). */
export type AccessController = import("./htpasswd.js").HtpasswdAuthenticator | import("./token.js").TokenAuthenticator;
