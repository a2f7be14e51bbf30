import type { Access } from "./access.js";
import type { AccessController, AuthDecision, Authenticator } from "./authenticator.js";

/**
 * The authenticator of the moment, replaced when settings change (the etcd overlay). A request
 * asks whichever one is current when it starts, and is decided by that one alone.
 */
export class SwitchableAuthenticator implements Authenticator {
  constructor(private current: AccessController | undefined) {}

  replace(next: AccessController | undefined): void {
    this.current = next;
  }

  get active(): AccessController | undefined {
    return this.current;
  }

  authorize(authorization: string | undefined, required: Access[], origin: string): Promise<AuthDecision> {
    const current = this.current;
    return current ? current.authorize(authorization, required, origin) : Promise.resolve({ ok: true, user: undefined });
  }
}
