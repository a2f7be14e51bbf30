import type * as Prom from "prom-client";
import Counter from "prom-client/lib/counter.js";
import Gauge from "prom-client/lib/gauge.js";
import Histogram from "prom-client/lib/histogram.js";
import Registry from "prom-client/lib/registry.js";
import eventLoopLag from "prom-client/lib/metrics/eventLoopLag.js";
import gc from "prom-client/lib/metrics/gc.js";
import heapSizeAndUsed from "prom-client/lib/metrics/heapSizeAndUsed.js";
import heapSpacesSizeAndUsed from "prom-client/lib/metrics/heapSpacesSizeAndUsed.js";
import osMemoryHeap from "prom-client/lib/metrics/osMemoryHeap.js";
import processHandles from "prom-client/lib/metrics/processHandles.js";
import processMaxFileDescriptors from "prom-client/lib/metrics/processMaxFileDescriptors.js";
import processOpenFileDescriptors from "prom-client/lib/metrics/processOpenFileDescriptors.js";
import processRequests from "prom-client/lib/metrics/processRequests.js";
import processResources from "prom-client/lib/metrics/processResources.js";
import processStartTime from "prom-client/lib/metrics/processStartTime.js";
import version from "prom-client/lib/metrics/version.js";
import { droppedLogLines } from "../log.js";
import { VERSION } from "../version.js";
import type { StoreSpace } from "../storage/driver.js";

/*
 * prom-client by its parts (types in prom-client-parts.d.ts), not its index: the index also
 * loads its Pushgateway and cluster aggregator, and with them node:http, node:https, node:zlib,
 * node:cluster and two quantile libraries, 5.5 MiB of resident memory a registry never uses
 * (Node 24, measured).
 *
 * Its default metrics (process_*, nodejs_*) one by one: its collectDefaultMetrics also loads
 * @opentelemetry/api, for CPU counters with trace exemplars that nothing here asks for (11 MiB
 * alone). The CPU counters are counted here instead.
 */
const DEFAULT_METRICS = [
  processStartTime, osMemoryHeap, processOpenFileDescriptors, processMaxFileDescriptors, eventLoopLag,
  processResources, processHandles, processRequests, heapSizeAndUsed, heapSpacesSizeAndUsed, version, gc,
];

function collectDefaultMetrics(registry: Prom.Registry): void {
  for (const collect of DEFAULT_METRICS) collect(registry, { eventLoopMonitoringPrecision: 10 });
  let last = process.cpuUsage();
  const registers = [registry];
  const system = new Counter({ name: "process_cpu_system_seconds_total", help: "Total system CPU time spent in seconds.", registers });
  const total = new Counter({ name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", registers });
  new Counter({
    name: "process_cpu_user_seconds_total", help: "Total user CPU time spent in seconds.", registers,
    // One collect reads the usage for all three, as prom-client's does.
    collect() {
      const now = process.cpuUsage();
      this.inc((now.user - last.user) / 1e6);
      system.inc((now.system - last.system) / 1e6);
      total.inc((now.user - last.user + now.system - last.system) / 1e6);
      last = now;
    },
  });
}

type Counter<T extends string = string> = Prom.Counter<T>;
type Gauge<T extends string = string> = Prom.Gauge<T>;
type Histogram<T extends string = string> = Prom.Histogram<T>;

/** Latency buckets from a cached HEAD (sub-millisecond) to a large blob transfer (minutes). */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * Every instrument of one registry process, in one prom-client registry (not the global one, so
 * that several registries in one process, as in tests, count apart). Names follow distribution's
 * where it has the metric, so its dashboards keep working.
 */
export class Metrics {
  readonly registry = new Registry();
  /** States read at each scrape: etcd watches by key, and the cluster registration. */
  private readonly watches = new Map<string, () => boolean>();
  private registration: (() => boolean) | undefined;
  /** The room on a local store's volume, read at each scrape. */
  private space: (() => Promise<StoreSpace | undefined>) | undefined;

  readonly httpRequests: Counter<"handler" | "method" | "code">;
  readonly httpDuration: Histogram<"handler" | "method">;
  readonly httpInFlight: Gauge<"handler">;
  readonly httpBytes: Counter<"handler" | "direction">;
  readonly uploadsInProgress: Gauge;
  readonly authFailures: Counter<"code">;

  readonly storageDuration: Histogram<"driver" | "action">;
  readonly storageErrors: Counter<"driver" | "action">;
  readonly storageFreeBytes: Gauge;
  readonly storageSizeBytes: Gauge;
  readonly storageFull: Gauge;

  readonly proxyRequests: Counter<"kind" | "result">;
  readonly proxyBytes: Counter<"source">;
  readonly proxyFetchesInFlight: Gauge;
  readonly proxyUpstreamErrors: Counter;
  readonly proxySiblings: Gauge;
  readonly proxySiblingStreams: Gauge;
  readonly proxySiblingRelays: Counter;
  readonly proxySiblingBytes: Counter;
  readonly proxySiblingDeclines: Counter;
  readonly proxyRangeRequests: Counter;
  readonly proxyRangeBytes: Counter;
  readonly proxyLinkRate: Gauge;
  readonly proxyWritebackReplayed: Counter<"result">;

  readonly gcRuns: Counter<"result">;
  readonly gcFreedBytes: Counter;
  readonly gcDeletedBlobs: Counter;
  readonly gcLastSuccess: Gauge;
  readonly retentionRuns: Counter<"result">;
  readonly retentionRemoved: Counter<"kind">;
  readonly retentionLastSuccess: Gauge;
  readonly scrubRuns: Counter<"result">;
  readonly scrubBytes: Counter;
  readonly scrubProblems: Gauge<"kind">;
  readonly scrubLastSuccess: Gauge;

  readonly etcdWatchUp: Gauge<"key">;
  readonly clusterRegistered: Gauge;

  readonly notificationEvents: Counter<"endpoint" | "result">;
  readonly notificationsPending: Gauge<"endpoint">;
  readonly notificationStatus: Counter<"endpoint" | "code">;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics(this.registry);
    this.httpRequests = new Counter({ name: "registry_http_requests_total", help: "Requests answered, by route handler, method and status code.", labelNames: ["handler", "method", "code"], registers });
    this.httpDuration = new Histogram({ name: "registry_http_request_duration_seconds", help: "Time from request to the last byte of the response.", labelNames: ["handler", "method"], buckets: LATENCY_BUCKETS, registers });
    this.httpInFlight = new Gauge({ name: "registry_http_in_flight_requests", help: "Requests being answered now.", labelNames: ["handler"], registers });
    this.httpBytes = new Counter({ name: "registry_http_bytes_total", help: "Bytes received (in) and sent (out) on the wire, headers included.", labelNames: ["handler", "direction"], registers });
    this.uploadsInProgress = new Gauge({ name: "registry_uploads_in_progress", help: "Upload requests (PATCH, PUT, monolithic POST) receiving blob data now.", registers });
    this.authFailures = new Counter({ name: "registry_auth_failures_total", help: "Requests refused by authentication or authorization, by error code.", labelNames: ["code"], registers });

    this.storageDuration = new Histogram({ name: "registry_storage_action_seconds", help: "Storage driver calls and how long they took (streams: until opened).", labelNames: ["driver", "action"], buckets: LATENCY_BUCKETS, registers });
    this.storageErrors = new Counter({ name: "registry_storage_errors_total", help: "Storage driver calls that failed (a missing path is an answer, not an error).", labelNames: ["driver", "action"], registers });
    // A statfs each: cheaper than keeping them in step.
    const spaceNow = () => this.space?.().catch(() => undefined);
    this.storageFreeBytes = new Gauge({
      name: "registry_storage_free_bytes", help: "Bytes still free on the volume of a store on local disk.", registers,
      async collect() {
        const space = await spaceNow();
        if (space) this.set(space.free);
      },
    });
    this.storageSizeBytes = new Gauge({
      name: "registry_storage_size_bytes", help: "Size of the volume of a store on local disk.", registers,
      async collect() {
        const space = await spaceNow();
        if (space) this.set(space.total);
      },
    });
    this.storageFull = new Gauge({
      name: "registry_storage_full", help: "1 while the last write that failed for lack of space has not been followed by one that succeeded.", registers,
      async collect() {
        const space = await spaceNow();
        if (space) this.set(space.fullSince ? 1 : 0);
      },
    });

    this.proxyRequests = new Counter({ name: "registry_proxy_requests_total", help: "Mirror lookups: hit (served from the store), miss (fetched from the peer), coalesced (joined a fetch already running).", labelNames: ["kind", "result"], registers });
    this.proxyBytes = new Counter({ name: "registry_proxy_bytes_total", help: "Blob bytes served from the cache (source=cache), fetched from the peer (source=upstream) and from the sibling mirror owning the blob (source=sibling).", labelNames: ["source"], registers });
    this.proxyFetchesInFlight = new Gauge({ name: "registry_proxy_fetches_in_flight", help: "Blobs being fetched from the peer now, or due to be (a fill that ranges started waits for them to pause).", registers });
    this.proxySiblingStreams = new Gauge({ name: "registry_proxy_sibling_streams", help: "Blob streams this mirror is serving to sibling mirrors now (at most proxy.siblings.fanout per blob).", registers });
    this.proxySiblingRelays = new Counter({ name: "registry_proxy_sibling_relays_total", help: "Sibling requests for a blob sent on to a sibling receiving it (a relay), this mirror serving its fanout already.", registers });
    this.proxySiblingBytes = new Counter({ name: "registry_proxy_sibling_bytes_total", help: "Blob bytes this mirror sent to sibling mirrors.", registers });
    this.proxySiblingDeclines = new Counter({ name: "registry_proxy_sibling_declines_total", help: "Sibling requests for a blob sent upstream (421) because this mirror's link is much slower than the asker's.", registers });
    this.proxyRangeRequests = new Counter({ name: "registry_proxy_range_requests_total", help: "Clients' single-range GETs of mirrored blobs, by where they were served from: store, fill (bytes already arrived) or passthrough (to where the fill's bytes come from).", labelNames: ["served"], registers });
    this.proxyRangeBytes = new Counter({ name: "registry_proxy_range_bytes_total", help: "Bytes of clients' range GETs of mirrored blobs, by where they were served from (as registry_proxy_range_requests_total).", labelNames: ["served"], registers });
    this.proxyWritebackReplayed = new Counter({ name: "registry_proxy_writeback_replayed_total", help: "A standby's journaled writes that left its journal: written to the peer, present there already, conflict (the peer's tag kept) or dropped (the peer refused it).", labelNames: ["result"], registers });
    this.proxyLinkRate = new Gauge({ name: "registry_proxy_link_rate_bytes", help: "This mirror's receive rate as it tells its siblings (bytes/s): the best of its latest fills.", registers });
    this.proxySiblings = new Gauge({ name: "registry_proxy_siblings", help: "Live mirrors of the fleet (proxy.siblings), this one included when registered.", registers });
    this.proxyUpstreamErrors = new Counter({ name: "registry_proxy_upstream_errors_total", help: "Requests to the peer that failed: unreachable, refused, an unexpected status, a bad or broken body.", registers });

    this.gcRuns = new Counter({ name: "registry_gc_runs_total", help: "Garbage collections run inside the server, by result.", labelNames: ["result"], registers });
    this.gcFreedBytes = new Counter({ name: "registry_gc_freed_bytes_total", help: "Bytes of blobs garbage collection deleted.", registers });
    this.gcDeletedBlobs = new Counter({ name: "registry_gc_deleted_blobs_total", help: "Blobs garbage collection deleted.", registers });
    this.retentionRuns = new Counter({ name: "registry_retention_runs_total", help: "Retention runs inside the server (storage.retention), by result.", labelNames: ["result"], registers });
    this.retentionRemoved = new Counter({ name: "registry_retention_removed_total", help: "Tags and manifests retention removed, by kind (tag, manifest).", labelNames: ["kind"], registers });
    this.retentionLastSuccess = new Gauge({ name: "registry_retention_last_success_timestamp_seconds", help: "When the last retention run finished without error (Unix time).", registers });
    this.scrubRuns = new Counter({ name: "registry_scrub_runs_total", help: "Scrubs run inside the server (storage.scrub), by result.", labelNames: ["result"], registers });
    this.scrubBytes = new Counter({ name: "registry_scrub_bytes_total", help: "Bytes of blobs the scrub read and checked against their digests.", registers });
    this.scrubProblems = new Gauge({ name: "registry_scrub_problems", help: "What the last scrub found wrong in the store, by kind (blob-corrupt, blob-missing, blob-size, manifest-missing, tag-dangling, layer-link-dangling).", labelNames: ["kind"], registers });
    this.scrubLastSuccess = new Gauge({ name: "registry_scrub_last_success_timestamp_seconds", help: "When the last scrub finished without error (Unix time).", registers });
    this.gcLastSuccess = new Gauge({ name: "registry_gc_last_success_timestamp_seconds", help: "When the last garbage collection finished without error (Unix time).", registers });

    const watches = this.watches;
    this.etcdWatchUp = new Gauge({
      name: "registry_etcd_watch_up", help: "1 while the watch of an etcd key is established, 0 while it is reconnecting.", labelNames: ["key"], registers,
      collect() {
        for (const [key, up] of watches) this.set({ key }, up() ? 1 : 0);
      },
    });
    const registered = () => this.registration?.();
    this.clusterRegistered = new Gauge({
      name: "registry_cluster_registered", help: "1 while this instance is registered in etcd for the load balancer.", registers,
      collect() {
        const state = registered();
        if (state !== undefined) this.set(state ? 1 : 0);
      },
    });

    new Gauge({ name: "registry_build_info", help: "Always 1; the labels say which lain-registry on which Node.js.", labelNames: ["version", "nodejs"], registers }).set({ version: VERSION, nodejs: process.version }, 1);

    // Read from the logger at each scrape; nothing increments it here.
    new Counter({
      name: "registry_log_lines_dropped_total", help: "Log lines dropped because stderr was read slower than the registry logged (8 MiB at most wait).", registers,
      collect() {
        this.reset();
        this.inc(droppedLogLines());
      },
    });

    this.notificationEvents = new Counter({ name: "registry_notifications_events_total", help: "Events per endpoint: delivered, failed (an attempt that will be retried), dropped (queue full or ignored on shutdown).", labelNames: ["endpoint", "result"], registers });
    this.notificationsPending = new Gauge({ name: "registry_notifications_pending", help: "Events queued for an endpoint.", labelNames: ["endpoint"], registers });
    this.notificationStatus = new Counter({ name: "registry_notifications_status_total", help: "HTTP status codes endpoints answered.", labelNames: ["endpoint", "code"], registers });
  }

  /** Reports whether the watch of an etcd key is up at each scrape. */
  trackEtcdWatch(key: string, connected: () => boolean): void {
    this.watches.set(key, connected);
  }

  /** Reports the room on the store's volume at each scrape (stores on local disk). */
  trackSpace(space: () => Promise<StoreSpace | undefined>): void {
    this.space = space;
  }

  /** Reports whether this instance is registered in etcd at each scrape. */
  trackRegistration(registered: () => boolean): void {
    this.registration = registered;
  }

  /** A mirror's: whether its peer passes the API check, at each scrape (a primary has no such gauge). */
  trackUpstream(up: () => Promise<boolean>): void {
    new Gauge({
      name: "registry_proxy_upstream_up", help: "A mirror's peer: 1 while its API check (GET /v2/ with the mirror's credentials) passes, 0 while it fails.", registers: [this.registry],
      async collect() {
        this.set((await up()) ? 1 : 0);
      },
    });
  }

  /** A standby's (proxy.pushes: writeback): its journal's length and the age of its oldest entry, at each scrape. */
  trackWriteback(state: () => { pending: number; oldestAt: string | undefined }): void {
    new Gauge({
      name: "registry_proxy_writeback_entries", help: "Writes a standby took while its peer did not answer, journaled and not yet replayed to the peer.", registers: [this.registry],
      collect() {
        this.set(state().pending);
      },
    });
    new Gauge({
      name: "registry_proxy_writeback_oldest_seconds", help: "Age of the oldest write in a standby's journal (0 when it is empty).", registers: [this.registry],
      collect() {
        const { oldestAt } = state();
        this.set(oldestAt ? Math.max(0, (Date.now() - Date.parse(oldestAt)) / 1000) : 0);
      },
    });
  }

  /** The exposition text for GET /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
