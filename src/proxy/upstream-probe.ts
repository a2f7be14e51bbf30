import { reusedFor } from "../reused-answer.js";
import type { UpstreamRegistry } from "./upstream.js";

/** Answers are reused this long, so that health checks and scrapes at any rate cost the peer little. */
const FRESH_MS = 5000;

/** How a mirror's peer stands: /health's `upstream`, the console's and registry_proxy_upstream_up. */
export interface UpstreamHealth {
  url: string;
  reachable: boolean;
  /** What the peer said to the last check, or why it could not be asked. */
  message: string;
  checkedAt: string;
  /** While unreachable: since when, and the error (which makes /health say "degraded"). */
  downSince?: string;
  error?: string;
}

/** The peer's API check (GET /v2/ with the mirror's credentials), asked at most every few seconds. */
export class UpstreamProbe {
  readonly check: () => Promise<UpstreamHealth> = reusedFor(FRESH_MS, () => this.probe());
  private downSince: Date | undefined;

  constructor(private readonly upstream: Pick<UpstreamRegistry, "url" | "check">) {}

  private async probe(): Promise<UpstreamHealth> {
    const { url } = this.upstream;
    try {
      const message = await this.upstream.check();
      this.downSince = undefined;
      return { url, reachable: true, message, checkedAt: new Date().toISOString() };
    } catch (err) {
      this.downSince ??= new Date();
      const message = err instanceof Error ? err.message : String(err);
      return { url, reachable: false, message, checkedAt: new Date().toISOString(), downSince: this.downSince.toISOString(), error: `${message}; serving what is cached` };
    }
  }
}
