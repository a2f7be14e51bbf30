import { hostname } from "node:os";
import { resolve } from "node:path";
import { storeLocation, type RegistryConfig, type RetentionRule } from "../config/config.js";
import { formatProblem } from "../config/load.js";
import type { AppContext } from "../http/context.js";
import { ConfigRefused, problemOf } from "../config/config-error.js";
import { ConfigError } from "../refusal.js";
import { listenAddress } from "../config/listen-address.js";
import type { RunningServer } from "../http/listen.js";
import type { TlsOptions } from "node:tls";
import { startServer, type ConnectionLimits } from "../http/server.js";
import { createLogger } from "../log.js";
import { instrumentDriver } from "../metrics/instrumented-driver.js";
import { Metrics } from "../metrics/metrics.js";
import { StoreProbe } from "../cluster/store-probe.js";
import type { CollectionCounters } from "../gc/collect.js";
import type { ScrubCounters, ScrubRecord } from "../gc/scrub.js";
import { CollectionBarrier } from "../gc/barrier.js";
import { schedulePurging } from "../gc/purge-uploads.js";
import { repeat } from "../gc/repeat.js";
import type { Notifier } from "../notifications/notifier.js";
import { PullTimes } from "../registry/pull-times.js";
import type { Logger } from "pino";
import { Registry, type RegistryOptions } from "../registry/registry.js";
import type { Namespace } from "../registry/repository.js";
import type { StorageDriver } from "../storage/driver.js";
import { paceBufferCollection } from "../memory.js";
import { VERSION } from "../version.js";
import { setupAuth } from "./auth-setup.js";
import { commandArgs } from "./args.js";
import { loadOrReport, reportProblems } from "./config-file.js";
import { usageError } from "./help.js";
import { absent, loop, running, scheduled, startInOrder, type Component } from "./components.js";
import { prepare } from "./prepare.js";
import { exitOnUnhandled } from "./last-resort.js";
import { followReadOnly } from "./read-only.js";
import type { MirrorParts } from "./mirror-setup.js";

/** Collections may run beside a serving registry (from any process): every registry it serves has the write barrier. */
export function registryOptions({ storage }: RegistryConfig, driver: StorageDriver, log: Logger): RegistryOptions {
  return {
    barrier: new CollectionBarrier(driver, { warn: (message) => log.warn(message) }),
    redirect: !storage.redirectDisabled,
    ...(storage.blobDescriptorCache === "inmemory" ? { cacheEntries: storage.blobDescriptorCacheSize } : {}),
  };
}

/** The registry a configuration asks for: its store, and a mirror over it (and its parts) when it has a proxy section. */
async function createRegistry(config: RegistryConfig, driver: StorageDriver, log: Logger, metrics: Metrics): Promise<{ store: Registry; registry: Namespace; mirror?: MirrorParts }> {
  const store = new Registry(driver, registryOptions(config, driver, log));
  if (!config.proxy) return { store, registry: store };
  const mirror = await (await import("./mirror-setup.js")).mirrorParts(config, store, log, metrics);
  return { store, registry: mirror.registry, mirror };
}

function gcCounters(metrics: Metrics): CollectionCounters {
  return {
    collected: (report) => {
      metrics.gcRuns.inc({ result: "ok" });
      metrics.gcDeletedBlobs.inc(report.blobsDeleted.length);
      metrics.gcFreedBytes.inc(report.bytesFreed);
      metrics.gcLastSuccess.setToCurrentTime();
    },
    failed: () => metrics.gcRuns.inc({ result: "error" }),
  };
}

function scrubCounters(metrics: Metrics, last: { record?: ScrubRecord }): ScrubCounters {
  return {
    scrubbed: (report) => {
      metrics.scrubRuns.inc({ result: "ok" });
      metrics.scrubBytes.inc(report.bytes);
      metrics.scrubProblems.reset();
      for (const problem of report.problems) metrics.scrubProblems.inc({ kind: problem.kind });
      metrics.scrubLastSuccess.setToCurrentTime();
      last.record = { at: new Date().toISOString(), report };
    },
    failed: (err) => {
      metrics.scrubRuns.inc({ result: "error" });
      last.record = { at: new Date().toISOString(), error: err instanceof Error ? err.message : String(err) };
    },
  };
}

/** host:port for the notifications' source; just the host on a unix socket. */
function eventSource(http: RegistryConfig["http"]): string {
  return http.net === "unix" ? hostname() : `${hostname()}:${listenAddress(http.addr).port}`;
}

/** Notifications wait this long at shutdown for endpoints to take what is queued. */
const NOTIFICATIONS_FLUSH_MS = 2000;

/** How long a withdrawn instance keeps taking new requests: the load balancer reloads meanwhile. */
const WITHDRAW_SETTLE_MS = 2000;

export interface RunningRegistry extends RunningServer {
  /**
   * Stops as an upgrade wants it (SIGTERM): withdraws the etcd registration, refuses new upload
   * sessions, keeps serving a moment for the load balancer to notice, then lets requests in
   * flight finish within the grace period (cluster.drain, else http.draintimeout).
   */
  drain(): Promise<void>;
}

/**
 * Wires a configuration into a running registry (also used by tests and benchmarks). A
 * configuration it cannot serve with is refused before anything listens or runs: ConfigRefused
 * (what `config check` lists) or a ConfigError (the store refused, an address is in use).
 */
export async function startRegistry(config: RegistryConfig, log = createLogger(config), limits?: ConnectionLimits): Promise<RunningRegistry> {
  const { prepared, findings } = await prepare(config, "serve");
  for (const problem of findings.warnings) log.warn({ key: problem.path }, formatProblem(problem));
  if (!prepared) throw new ConfigRefused(findings.errors);
  const metrics = new Metrics();
  const driver = instrumentDriver(prepared.driver, metrics);
  await driver.verify?.();
  const { store, registry, mirror } = await createRegistry(config, driver, log, metrics);
  const auth = await setupAuth(config, prepared.auth, log);
  const readOnly = await followReadOnly(config, log);
  for (const watch of [auth.watch, readOnly.watch]) if (watch) metrics.trackEtcdWatch(watch.key, watch.connected);
  // Notifications, the console, the debug listener and collection load only when configured.
  const notifier = config.notifications && new (await import("../notifications/notifier.js")).Notifier(config.notifications, eventSource(config.http), metrics, log);
  const probe = new StoreProbe(driver, config.storage.minFree);
  const { space } = driver;
  if (space) metrics.trackSpace(() => space.call(driver));
  const lifecycle = { draining: false };
  const announcer = await announce(config, log, async () => !lifecycle.draining && (await probe.check()).reachable);
  if (announcer) metrics.trackRegistration(() => announcer.state.registered);
  const prefetching = mirror?.prefetching;
  const writeback = mirror?.registry.writeback;
  const lastScrub: { record?: ScrubRecord } = {};
  // Pull times are kept only for retention rules to read.
  const pulls = config.storage.retention.rules.length > 0 ? new PullTimes(driver) : undefined;
  const site = prepared.consoleAssets && (await import("./console-site.js")).consoleSite(config, prepared.consoleAssets, { registry: store, mirror, metrics, auth, readOnly: readOnly.state, announcer, lastScrub });
  const { debug } = config;
  const app: AppContext = {
    registry,
    settings: { http: config.http, storage: config.storage, catalogMaxEntries: config.catalog.maxEntries },
    access: {
      readOnly: readOnly.state,
      ...(auth.authenticator ? { auth: auth.authenticator } : {}),
      ...(mirror ? { ownHop: mirror.ownHop, mirrored: mirror.registry.namespaces } : {}),
      ...(mirror?.siblingAnswers ? { siblings: mirror.siblingAnswers } : {}),
    },
    telemetry: {
      log,
      accessLog: !config.log.accessLogDisabled,
      metrics,
      // Without a debug listener the metrics, when enabled, are on the main port.
      ...(debug.metricsPath !== undefined && debug.addr === undefined ? { metricsPath: debug.metricsPath } : {}),
      health: async () => ({
        storage: await probe.check(),
        readonly: readOnly.state,
        ...auth.health(),
        ...(announcer ? { cluster: announcer.health() } : {}),
        ...(prefetching ? { prefetch: prefetching.health() } : {}),
        ...(mirror ? { upstream: await mirror.upstream.check() } : {}),
        ...(mirror?.registry.writeback ? { writeback: mirror.registry.writeback.state() } : {}),
      }),
    },
    lifecycle,
    ...(notifier ? { notifier } : {}),
    ...(pulls ? { pulls } : {}),
    ...(site ? { console: site } : {}),
  };
  const listeners = new Listeners(app, limits, prepared.tls, log);
  const paused = () => readOnly.state.enabled;
  const { uploadPurging, gc, scrub, retention } = config.storage;
  // The one order: what serves requests after what they use; background work once listening.
  const stop = await startInOrder([
    running("registry", () => registry.close()),
    running("auth", () => auth.close()),
    running("read-only", () => readOnly.close()),
    notifier ? running("notifier", () => notifier.close(NOTIFICATIONS_FLUSH_MS)) : absent("notifier"),
    debug.addr !== undefined ? await debugServer(debug.addr, debug.metricsPath, metrics, log) : absent("debug server"),
    listeners,
    prefetching ? loop("prefetch", prefetching) : absent("prefetch"),
    mirror?.siblingWatch ? loop("sibling watch", mirror.siblingWatch) : absent("sibling watch"),
    writeback ? { name: "write-back", start: () => writeback.start(mirror.registry.upstreamAnswers), stop: () => writeback.stop() } : absent("write-back"),
    announcer ? { name: "announcer", start: () => announcer.start(), stop: () => announcer.withdraw() } : absent("announcer"),
    uploadPurging.enabled ? scheduled("upload purging", () => schedulePurging(driver, { ...uploadPurging, paused }, log)) : absent("upload purging"),
    gc.enabled ? await collection(driver, { ...gc, paused }, log, metrics) : absent("garbage collection"),
    scrub.enabled ? await scrubbing(driver, { ...scrub, paused }, log, metrics, lastScrub) : absent("scrub"),
    pulls ? flushing(pulls, log) : absent("pull times"),
    retention.enabled && retention.rules.length > 0 ? await retaining(store, { ...retention, paused }, log, metrics, notifier) : absent("retention"),
  ]);
  return {
    ...listeners.main(),
    close: () => stop(0),
    drain: async () => {
      lifecycle.draining = true;
      const graceMs = config.cluster?.drainMs ?? config.http.drainTimeoutMs;
      if (announcer) {
        await announcer.withdraw();
        await new Promise((resolve) => setTimeout(resolve, Math.min(WITHDRAW_SETTLE_MS, graceMs)));
      }
      await stop(Math.max(0, graceMs - WITHDRAW_SETTLE_MS));
    },
  };
}

/** The users' listener and, with proxy.siblings.addr, the siblings' own: they start together and drain together. */
class Listeners implements Component {
  readonly name = "listeners";
  private users: RunningServer | undefined;
  private siblings: RunningServer | undefined;

  constructor(
    private readonly app: AppContext,
    private readonly limits: ConnectionLimits | undefined,
    private readonly tls: TlsOptions | undefined,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.users = await startServer(this.app, this.limits, this.tls);
    if (this.app.access.siblings?.addr === undefined) return;
    try {
      this.siblings = await startServer(this.app, this.limits, this.tls, "siblings");
    } catch (err) {
      await this.users.close();
      throw err;
    }
    this.log.info({ url: this.siblings.url }, "siblings' listener listening: signed requests of sibling mirrors only");
  }

  async stop(graceMs: number): Promise<void> {
    await Promise.all([this.users?.close(graceMs), this.siblings?.close(graceMs)]);
  }

  /** The users' listener, once started. */
  main(): RunningServer {
    if (!this.users) throw new Error("the listeners have not started");
    return this.users;
  }
}

/** debug.addr: its own listener for metrics and health (its module loads only then). */
async function debugServer(addr: string, metricsPath: string | undefined, metrics: Metrics, log: Logger): Promise<Component> {
  const { startDebugServer } = await import("../http/debug-server.js");
  let server: RunningServer | undefined;
  return {
    name: "debug server",
    start: async () => {
      server = await startDebugServer(addr, metricsPath, metrics, log);
      log.info({ url: server.url, metrics: metricsPath }, "debug server listening");
    },
    stop: () => server?.close(),
  };
}

/** storage.gc in the server (the collector loads only then). */
/** How often the pull times of each instance reach the store (one small object per repository pulled meanwhile). */
const PULL_FLUSH_MS = 30_000;

/** Writes the pull times every PULL_FLUSH_MS, and once more at stop. */
function flushing(pulls: PullTimes, log: Logger): Component {
  const flush = () => pulls.flush().catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, "pull times could not be written; retrying"));
  let stop: (() => void) | undefined;
  return {
    name: "pull times",
    start: () => void (stop = repeat(PULL_FLUSH_MS, flush, { paused: () => false, immediately: false })),
    stop: async () => {
      stop?.();
      await flush();
    },
  };
}

async function retaining(registry: Registry, options: { intervalMs: number; rules: RetentionRule[]; paused: () => boolean }, log: Logger, metrics: Metrics, notifier: Notifier | undefined): Promise<Component> {
  const { scheduleRetention } = await import("../gc/retention.js");
  const counters = {
    ran: (report: { removedTags: string[]; removedManifests: string[] }) => {
      metrics.retentionRuns.inc({ result: "ok" });
      metrics.retentionRemoved.inc({ kind: "tag" }, report.removedTags.length);
      metrics.retentionRemoved.inc({ kind: "manifest" }, report.removedManifests.length);
      metrics.retentionLastSuccess.setToCurrentTime();
    },
    failed: () => metrics.retentionRuns.inc({ result: "error" }),
  };
  return scheduled("retention", () => scheduleRetention(registry, options, log, counters, notifier && ((event) => notifier.publish(event))));
}

async function scrubbing(driver: StorageDriver, options: { intervalMs: number; rateMiBps: number; paused: () => boolean }, log: Logger, metrics: Metrics, last: { record?: ScrubRecord }): Promise<Component> {
  const { scheduleScrub } = await import("../gc/scrub.js");
  return scheduled("scrub", () => scheduleScrub(driver, options, log, scrubCounters(metrics, last)));
}

async function collection(driver: StorageDriver, options: { intervalMs: number; delayMs: number; paused: () => boolean }, log: Logger, metrics: Metrics): Promise<Component> {
  const { scheduleCollection } = await import("../gc/collect.js");
  return scheduled("garbage collection", () => scheduleCollection(driver, options, log, gcCounters(metrics)));
}

/** The etcd registration of a `cluster` section (etcd3 loads only then). */
async function announce(config: RegistryConfig, log: Logger, healthy: () => Promise<boolean>) {
  if (!config.cluster || !config.etcd) return undefined;
  const { Announcer } = await import("../cluster/announce.js");
  return new Announcer(config.etcd, config.cluster, healthy, log);
}

/**
 * `lain-registry serve [config.yml]`: exit 0 when stopped, 2 when the configuration is refused,
 * 1 when what it needs is not there yet (NotYetAvailable) or on an error nothing handled.
 */
export async function serve(args: string[]): Promise<number> {
  const parsed = commandArgs(args, {});
  if (typeof parsed === "string") return usageError("serve", parsed);
  const loaded = await loadOrReport(parsed.config);
  if (!loaded) return 2;
  const { config } = loaded;
  const log = createLogger(config);
  exitOnUnhandled(log);
  for (const problem of loaded.warnings) log.warn({ key: problem.path }, formatProblem(problem));
  let running: RunningRegistry;
  try {
    running = await startRegistry(config, log);
  } catch (err) {
    if (!(err instanceof ConfigRefused) && !(err instanceof ConfigError)) throw err;
    const problems = err instanceof ConfigRefused ? err.problems : [problemOf(err, "")];
    reportProblems(problems);
    // Only what may come by itself is worth a restart; a wrong configuration is not.
    if (!problems.every((p) => p.transient)) return 2;
    process.stderr.write("not available yet: exiting 1, for the supervisor to start it again (a configuration error would exit 2)\n");
    return 1;
  }
  log.info({ version: VERSION, node: process.version, url: running.url, config: resolve(parsed.config), storage: config.storage.driver, store: storeLocation(config.storage), mirrorOf: config.proxy?.remoteUrls.join(", ") }, "lain-registry listening");
  const pacer = paceBufferCollection();

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "draining, then shutting down");
      resolve();
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  await running.drain();
  pacer.stop();
  log.info("stopped");
  return 0;
}
