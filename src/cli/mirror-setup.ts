import type { Logger } from "pino";
import type { RegistryConfig } from "../config/config.js";
import type { SiblingAnswers } from "../http/context.js";
import type { Metrics } from "../metrics/metrics.js";
import { MirrorRegistry, type SiblingAsking } from "../proxy/mirror.js";
import { PrefetchLoop } from "../proxy/prefetch.js";
import { Siblings } from "../proxy/siblings.js";
import { HOP_HEADER } from "../proxy/upstream.js";
import { UpstreamProbe } from "../proxy/upstream-probe.js";
import { parseReference, type Reference } from "../registry/names.js";
import type { Registry } from "../registry/registry.js";
import type { RegistrationWatch } from "../cluster/registration-watch.js";

/** What a configuration with a proxy section adds to a running instance. */
export interface MirrorParts {
  registry: MirrorRegistry;
  /** How the peer stands, for /health, the console and the metrics. */
  upstream: UpstreamProbe;
  /** proxy.prefetch's loop, started once the registry listens; undefined without entries. */
  prefetching: PrefetchLoop | undefined;
  /** The hop mark of this instance's upstream requests, by which it recognises its own. */
  ownHop: { header: string; value: string };
  /** proxy.siblings: the watch of the fleet's registrations, started once the registry listens. */
  siblingWatch: RegistrationWatch | undefined;
  /** proxy.siblings: how this instance checks and answers its siblings' requests. */
  siblingAnswers: SiblingAnswers | undefined;
}

/** proxy.prefetch's loop, re-checking every ttl (at least every 10 s). */
function keepWarm(registry: MirrorRegistry, log: Logger): PrefetchLoop | undefined {
  const { prefetch, ttlMs } = registry.config;
  if (prefetch.length === 0) return undefined;
  // Validation has checked every entry's grammar.
  const references = prefetch.map((text) => ({ text, ref: parseReference(text) as Reference }));
  return new PrefetchLoop(registry, references, Math.max(ttlMs, 10_000), log);
}

/** The pull-through mirror of a proxy section (serve loads this module only then). */
export async function mirrorParts(config: RegistryConfig, local: Registry, log: Logger, metrics: Metrics): Promise<MirrorParts> {
  const proxy = config.proxy as NonNullable<RegistryConfig["proxy"]>;
  const { cluster, etcd } = config;
  // Validation has made sure of the cluster and etcd sections and of http.secret.
  const fleet = proxy.siblings.enabled && cluster && etcd ? { cluster, etcd } : undefined;
  const siblings = fleet && new Siblings(fleet.cluster.advertise, proxy, config.http.secret, () => metrics.proxyUpstreamErrors.inc());
  const registry = new MirrorRegistry(local, proxy, log, metrics, siblings);
  // etcd3 (and gRPC) load only for a fleet.
  const siblingWatch =
    fleet &&
    siblings &&
    new (await import("../cluster/registration-watch.js")).RegistrationWatch(
      fleet.etcd,
      fleet.cluster.prefix,
      (registrations) => {
        siblings.update(registrations.filter((r) => r.role === "mirror").map((r) => r.address));
        metrics.proxySiblings.set(siblings.addresses().length);
      },
      log,
      "the last sibling mirrors seen",
    );
  const siblingAnswers = siblings && { secret: config.http.secret, heartbeat: siblings.heartbeat(), addr: proxy.siblings.addr, namespaceFor: (asking: SiblingAsking) => registry.forSibling(asking) };
  const { writeback } = registry;
  if (writeback) {
    await writeback.load();
    metrics.trackWriteback(() => writeback.state());
  }
  const upstream = new UpstreamProbe(registry.upstream);
  metrics.trackUpstream(() => upstream.check().then((health) => health.reachable));
  return { registry, upstream, prefetching: keepWarm(registry, log), ownHop: { header: HOP_HEADER, value: registry.upstream.hop }, siblingWatch, siblingAnswers };
}
