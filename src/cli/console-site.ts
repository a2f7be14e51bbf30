import type { Announcer } from "../cluster/announce.js";
import type { RegistryConfig } from "../config/config.js";
import { ConsoleApi } from "../console/api.js";
import type { Asset } from "../console/assets.js";
import type { AppContext } from "../http/context.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Registry } from "../registry/registry.js";
import { serveConsole } from "../http/console.js";
import { VERSION } from "../version.js";
import { mode, type AuthSetup } from "./auth-setup.js";
import type { MirrorParts } from "./mirror-setup.js";
import type { ReadOnlyState } from "./read-only.js";
import type { ScrubRecord } from "../gc/scrub.js";

/** What the web console reads from a running instance. */
export interface ConsoleParts {
  registry: Registry;
  metrics: Metrics;
  auth: AuthSetup;
  readOnly: ReadOnlyState;
  mirror: MirrorParts | undefined;
  announcer: Announcer | undefined;
  /** The last scrub inside the server (storage.scrub). */
  lastScrub: { record?: ScrubRecord };
}

/** The console of `console.enabled` (its files read by prepare), wired to this instance's parts. */
export function consoleSite(config: RegistryConfig, assets: Map<string, Asset>, parts: ConsoleParts): NonNullable<AppContext["console"]> {
  const { registry, metrics, auth, readOnly, mirror, announcer, lastScrub } = parts;
  const api = new ConsoleApi({
    registry,
    metrics,
    version: VERSION,
    role: config.cluster?.role ?? (config.proxy ? "mirror" : "primary"),
    authMode: () => mode(auth.authenticator.active),
    tokenRealm: () => {
      const active = auth.authenticator.active;
      return active?.kind === "token" ? { realm: active.config.realm, service: active.config.service } : undefined;
    },
    readOnly: () => readOnly.enabled,
    gcDelayMs: config.storage.gc.delayMs,
    retentionRules: config.storage.retention.rules,
    scrub: { ...config.storage.scrub, last: () => lastScrub.record },
    ...(mirror ? { mirror: { registry: mirror.registry, upstream: mirror.upstream, prefetch: () => mirror.prefetching?.state ?? [] } } : {}),
    ...(announcer ? { cluster: { registered: () => announcer.state.registered, instances: () => announcer.instances() } } : {}),
  });
  return { path: config.console.path, assets, api, serve: serveConsole };
}
