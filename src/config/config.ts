import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import type { EtcdConfig } from "../etcd/client.js";
import { parseDuration } from "./duration.js";
import { parseRoom, type Room } from "./room.js";
import { DEFAULT_ROOT_DIRECTORY } from "./schema.js";
import { asBool, asInt } from "./validate.js";

export type LogLevel = "error" | "warn" | "info" | "debug";

export interface StorageConfig {
  /** The one driver section present: filesystem, inmemory, s3 or oss. */
  driver: string;
  parameters: Record<string, unknown>;
  deleteEnabled: boolean;
  redirectDisabled: boolean;
  /** storage.cache.blobdescriptor (or layerinfo, its old name) */
  blobDescriptorCache: "inmemory" | "redis" | undefined;
  /** storage.cache.blobdescriptorsize: entries the in-memory cache keeps */
  blobDescriptorCacheSize: number;
  /** storage.maintenance.uploadpurging, with distribution's defaults (on, 168h, every 24h). */
  uploadPurging: { enabled: boolean; ageMs: number; intervalMs: number; dryRun: boolean };
  /** storage.maintenance.readonly.enabled: every write is refused. */
  readOnly: boolean;
  /** storage.gc (ours): collect inside the server every interval; blobs younger than delay stay. */
  gc: { enabled: boolean; intervalMs: number; delayMs: number };
  /** storage.scrub (ours): every blob checked against its digest, damage quarantined, every interval, at most rateMiBps. */
  scrub: { enabled: boolean; intervalMs: number; rateMiBps: number };
  /** storage.retention (ours): what to keep; no rules keep everything. `enabled`: run inside the server every interval. */
  retention: { enabled: boolean; intervalMs: number; rules: RetentionRule[] };
  /** storage.filesystem.minfree (ours): below this free space on the store's volume, /health is degraded. */
  minFree: Room;
}

/** The filesystem store's root as an absolute path: relative ones are under the working directory. */
export function filesystemRoot(storage: StorageConfig): string {
  const root = storage.parameters.rootdirectory;
  return resolve(typeof root === "string" && root !== "" ? root : DEFAULT_ROOT_DIRECTORY);
}

/** Where the store is, for the start line: an absolute directory, or a bucket and prefix at an endpoint. */
export function storeLocation(storage: StorageConfig): string {
  const { driver, parameters: p } = storage;
  const prefix = typeof p.rootdirectory === "string" ? p.rootdirectory.replace(/^\/+/, "") : "";
  if (driver === "filesystem") return filesystemRoot(storage);
  if (driver === "s3") return `s3://${String(p.bucket)}/${prefix} at ${String(p.regionendpoint ?? `region ${String(p.region)}`)}`;
  if (driver === "oss") return `oss://${String(p.bucket)}/${prefix} at ${String(p.endpoint ?? `region ${String(p.region)}`)}`;
  return driver;
}

export interface HttpConfig {
  /** Host and port to listen on (":5000" is every interface), or a socket path with net: unix. */
  addr: string;
  net: "tcp" | "unix";
  /** Base URL for Location headers; default: from the request's Host / X-Forwarded-* headers. */
  host: string | undefined;
  /** Path prefix of every route, e.g. "/registry/". */
  prefix: string;
  /** Signs upload state; instances sharing a store must share it. Generated when absent. */
  secret: string;
  relativeUrls: boolean;
  headers: Record<string, string[]>;
  tls: TlsConfig | undefined;
  /** http.draintimeout: how long a stopping server waits for requests in flight (0: none). */
  drainTimeoutMs: number;
}

/** http.tls: serve HTTPS with this certificate and key. */
export interface TlsConfig {
  certificate: string;
  key: string;
  /** minimumtls: tls1.0 ... tls1.3 (Node's default, TLS 1.2, when absent). */
  minimumTls: "tls1.0" | "tls1.1" | "tls1.2" | "tls1.3" | undefined;
  /** clientcas: CA bundles; when given, every client must present a certificate one of them issued. */
  clientCas: string[];
  /** ciphersuites: Go's names of the suites allowed (distribution's format). */
  cipherSuites: string[];
}

/** http.debug: a second listener for operators; prometheus.path is served there. */
export interface DebugConfig {
  addr: string | undefined;
  /** Where the metrics are served: on the debug listener, or on the main port without one. */
  metricsPath: string | undefined;
}

export interface NotificationEndpointConfig {
  name: string;
  url: string;
  headers: Record<string, string[]>;
  timeoutMs: number;
  /** Failures in a row after which each retry waits `backoffMs` first. */
  threshold: number;
  backoffMs: number;
  /** Target media types and actions this endpoint does not want. */
  ignoredMediaTypes: string[];
  ignoredActions: string[];
  /** Events held while the endpoint is down; beyond it the oldest are dropped. */
  queueSize: number;
}

export interface NotificationsConfig {
  endpoints: NotificationEndpointConfig[];
  /** notifications.events.includereferences: manifest events list what the manifest references. */
  includeReferences: boolean;
}

/**
 * One rule of storage.retention: the repositories it governs (a regular expression matched whole),
 * the tags it keeps (any criterion keeps a tag; without `keep` it removes no tag), and what else it
 * removes. A tag or manifest that any governing rule keeps stays.
 */
export interface RetentionRule {
  repositories: string;
  keep:
    | {
        /** Protected tags (regular expressions matched whole): kept whatever else is said. */
        always: string[];
        tags: string | undefined;
        newestPushed: number | undefined;
        newestPulled: number | undefined;
        pushedWithinMs: number | undefined;
        pulledWithinMs: number | undefined;
      }
    | undefined;
  /** Untagged manifests older than this are deleted; undefined: kept. */
  untaggedOlderThanMs: number | undefined;
  /** Referrers whose subject manifest is gone are deleted. */
  orphanReferrers: boolean;
}

export interface AuthConfig {
  token?: { realm: string; service: string; issuer: string; rootCertBundle?: string; jwks?: string; autoRedirectPath?: string; signingAlgorithms?: string[] };
  htpasswd?: { realm: string; path: string };
}

export interface ProxyConfig {
  /** The peer, or equivalent peers (a primary and a standby): tried in order. */
  remoteUrls: string[];
  username: string | undefined;
  password: string | undefined;
  /** How long a tag fetched from the peer is served before the peer is asked again. */
  ttlMs: number;
  /** Repository name prefixes to mirror; empty: every repository. */
  namespaces: string[];
  /** References (name:tag, name@digest) the mirror keeps cached. */
  prefetch: string[];
  maxConnections: number;
  /** Where blobs being fetched are spooled for concurrent readers; default the system's temp dir. */
  spoolDir: string | undefined;
  timeouts: { connectMs: number; responseMs: number; idleMs: number };
  /**
   * What a push or delete in a mirrored namespace gets. "refuse": DENIED naming the primary, or
   * UNAVAILABLE (retry) while the peer does not answer. "writeback" (a standby, with an auth
   * section): while the peer does not answer, stored here and journaled for the peer; while it
   * answers, refused as with "refuse".
   */
  pushes: "refuse" | "writeback";
  /** The users' listener may be reachable beyond loopback without an auth section: said on purpose. */
  unauthenticated: boolean;
  /** A range request for a blob this mirror lacks also fetches the whole blob in the background, once. */
  fillOnRange: boolean;
  /**
   * Fetch each blob once per fleet: ask the mirror that owns it (proxy.siblings). `addr`: the
   * listener that takes only the siblings' signed requests; without it they come to http.addr.
   */
  siblings: {
    enabled: boolean;
    firstByteTimeoutMs: number;
    addr: string | undefined;
    /** How many siblings' streams of one blob this mirror serves at once; more are sent to a sibling receiving it (a relay). */
    fanout: number;
  };
}

export interface ClusterConfig {
  role: "primary" | "mirror";
  /** The URL the load balancer should use for this instance. */
  advertise: string;
  /** Where instances register, one key each. */
  prefix: string;
  /** How long a SIGTERM'd instance keeps serving what is in flight. */
  drainMs: number;
  /** The registration's lease: a crashed instance vanishes this long after its last keepalive. */
  leaseSeconds: number;
}

export interface RegistryConfig {
  /** formatter: text or json/logstash; unset: text on a terminal, else JSON. */
  log: { level: LogLevel; formatter: string | undefined; fields: Record<string, unknown>; accessLogDisabled: boolean };
  storage: StorageConfig;
  http: HttpConfig;
  catalog: { maxEntries: number };
  debug: DebugConfig;
  /** Absent when no endpoint is configured (or all are disabled). */
  notifications: NotificationsConfig | undefined;
  auth: AuthConfig;
  /** The etcd overlay of auth settings; absent without an `etcd` section. */
  etcd: EtcdConfig | undefined;
  /** Announce in etcd; absent without a `cluster` section. */
  cluster: ClusterConfig | undefined;
  /** The web console (ours): off unless console.enabled; served under `path` ("/ui/"). */
  console: { enabled: boolean; path: string };
  /** Pull through from a peer registry; absent without a `proxy` section. */
  proxy: ProxyConfig | undefined;
  /** The parsed document, for sections that later features read. */
  raw: Record<string, unknown>;
}

type Tree = Record<string, unknown>;

/** An operator has time to act before the disk is full: node-exporter's usual warning level. */
const DEFAULT_MIN_FREE: Room = { ratio: 0.1 };

function section(tree: unknown, key: string): Tree {
  const value = (tree as Tree | undefined)?.[key];
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Tree) : {};
}

function text(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}

function headers(value: Tree): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, v] of Object.entries(value)) out[name] = Array.isArray(v) ? v.map(String) : [String(v)];
  return out;
}

function normalizePrefix(prefix: string | undefined): string {
  if (!prefix || prefix === "/") return "";
  return `/${prefix.replace(/^\/+|\/+$/g, "")}`;
}

const DRIVERS = ["filesystem", "inmemory", "s3", "oss"];

function list(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : typeof value === "string" ? value.split(",").filter((v) => v !== "") : [];
}

function etcdConfig(value: unknown): EtcdConfig | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const etcd = value as Tree;
  const endpoints = list(etcd.endpoints);
  const config: EtcdConfig = {
    endpoints: endpoints.length > 0 ? endpoints : ["http://127.0.0.1:2379"],
    authKey: text(etcd.authkey) ?? "/lain/config/auth/registry",
    readOnlyKey: text(etcd.readonlykey) ?? "/lain/config/registry/readonly",
  };
  const caFile = text(etcd.cafile);
  const certFile = text(etcd.certfile);
  const keyFile = text(etcd.keyfile);
  const username = text(etcd.username);
  const password = text(etcd.password);
  if (caFile) config.caFile = caFile;
  if (certFile) config.certFile = certFile;
  if (keyFile) config.keyFile = keyFile;
  if (username) config.username = username;
  if (password) config.password = password;
  return config;
}

function authConfig(auth: Tree): AuthConfig {
  const token = section(auth, "token");
  const htpasswd = section(auth, "htpasswd");
  if (token.realm) {
    return {
      token: {
        realm: String(token.realm),
        service: String(token.service),
        issuer: String(token.issuer),
        ...(token.rootcertbundle ? { rootCertBundle: String(token.rootcertbundle) } : {}),
        ...(token.jwks ? { jwks: String(token.jwks) } : {}),
        // distribution's default path for autoredirect
        ...(asBool(token.autoredirect) ? { autoRedirectPath: text(token.autoredirectpath) ?? "/auth/token" } : {}),
        ...(token.signingalgorithms !== undefined ? { signingAlgorithms: list(token.signingalgorithms) } : {}),
      },
    };
  }
  return htpasswd.path ? { htpasswd: { realm: String(htpasswd.realm), path: String(htpasswd.path) } } : {};
}

function minFree(value: unknown): Room {
  return value === undefined || value === null ? DEFAULT_MIN_FREE : (parseRoom(value as string | number) ?? DEFAULT_MIN_FREE);
}

function durationMs(value: unknown, fallback: number): number {
  return value === undefined || value === null ? fallback : (parseDuration(value as string | number) ?? fallback);
}

/** A peer named on a command line (`scrub --peer`), with every other proxy setting at its default. */
export function peerConfig(url: string): ProxyConfig {
  return proxyConfig({ remoteurl: url }) as ProxyConfig;
}

function retentionRule(value: unknown): RetentionRule {
  const rule = (typeof value === "object" && value !== null ? value : {}) as Tree;
  const keep = rule.keep === undefined || rule.keep === null ? undefined : section(rule, "keep");
  const optionalMs = (v: unknown) => (v === undefined || v === null ? undefined : durationMs(v, 0));
  return {
    repositories: text(rule.repositories) ?? ".*",
    keep: keep && {
      always: list(keep.always),
      tags: text(keep.tags),
      newestPushed: asInt(keep.newestpushed),
      newestPulled: asInt(keep.newestpulled),
      pushedWithinMs: optionalMs(keep.pushedwithin),
      pulledWithinMs: optionalMs(keep.pulledwithin),
    },
    untaggedOlderThanMs: optionalMs(section(rule, "untagged").olderthan),
    orphanReferrers: asBool(rule.orphanreferrers) ?? false,
  };
}

function proxyConfig(value: unknown): ProxyConfig | undefined {
  if (typeof value !== "object" || value === null || !(value as Tree).remoteurl) return undefined;
  const proxy = value as Tree;
  const timeouts = section(proxy, "timeouts");
  const siblings = section(proxy, "siblings");
  return {
    remoteUrls: list(proxy.remoteurl).map((url) => url.trim().replace(/\/+$/, "")),
    username: text(proxy.username),
    password: text(proxy.password),
    ttlMs: durationMs(proxy.ttl, 60_000),
    namespaces: list(proxy.namespaces).map((ns) => ns.replace(/\/+$/, "")),
    prefetch: list(proxy.prefetch),
    maxConnections: asInt(proxy.maxconnections) ?? 32,
    spoolDir: text(proxy.spooldir),
    timeouts: {
      connectMs: durationMs(timeouts.connect, 5_000),
      responseMs: durationMs(timeouts.response, 30_000),
      idleMs: durationMs(timeouts.idle, 60_000),
    },
    pushes: text(proxy.pushes) === "writeback" || text(proxy.pushes) === "local" ? "writeback" : "refuse",
    unauthenticated: asBool(proxy.unauthenticated) ?? false,
    fillOnRange: asBool(proxy.fillonrange) ?? true,
    siblings: {
      enabled: asBool(siblings.enabled) ?? false,
      firstByteTimeoutMs: durationMs(siblings.firstbytetimeout, 500),
      addr: text(siblings.addr),
      fanout: asInt(siblings.fanout) ?? 1,
    },
  };
}

function debugConfig(http: Tree): DebugConfig {
  const debug = section(http, "debug");
  const prometheus = section(debug, "prometheus");
  return {
    addr: text(debug.addr),
    metricsPath: asBool(prometheus.enabled) ? (text(prometheus.path) ?? "/metrics") : undefined,
  };
}

function notificationsConfig(value: Tree): NotificationsConfig | undefined {
  const endpoints = (Array.isArray(value.endpoints) ? (value.endpoints as Tree[]) : [])
    .filter((endpoint) => !asBool(endpoint.disabled))
    .map((endpoint): NotificationEndpointConfig => {
      const ignore = section(endpoint, "ignore");
      return {
        name: String(endpoint.name),
        url: String(endpoint.url),
        headers: headers(section(endpoint, "headers")),
        timeoutMs: durationMs(endpoint.timeout, 1_000),
        threshold: Math.max(1, asInt(endpoint.threshold) ?? 10),
        backoffMs: durationMs(endpoint.backoff, 1_000),
        ignoredMediaTypes: [...list(endpoint.ignoredmediatypes), ...list(ignore.mediatypes)],
        ignoredActions: list(ignore.actions),
        queueSize: Math.max(1, asInt(endpoint.queuesize) ?? 10_000),
      };
    });
  if (endpoints.length === 0) return undefined;
  return { endpoints, includeReferences: asBool(section(value, "events").includereferences) ?? false };
}

function clusterConfig(raw: Tree): ClusterConfig | undefined {
  const cluster = raw.cluster;
  if (typeof cluster !== "object" || cluster === null) return undefined;
  const c = cluster as Tree;
  const http = section(raw, "http");
  return {
    role: text(c.role) === "mirror" || (c.role === undefined && raw.proxy) ? "mirror" : "primary",
    advertise: String(c.advertise).replace(/\/+$/, ""),
    prefix: (text(c.prefix) ?? "/lain/registry/instances").replace(/\/+$/, ""),
    drainMs: durationMs(c.drain ?? http.draintimeout, 30_000),
    leaseSeconds: Math.max(2, Math.round(durationMs(c.ttl, 5_000) / 1000)),
  };
}

/** Builds the typed configuration from a raw document that passed validation. */
export function toConfig(raw: Tree): RegistryConfig {
  const log = section(raw, "log");
  const storage = section(raw, "storage");
  const http = section(raw, "http");
  const driver = DRIVERS.find((d) => d in storage) ?? "filesystem";
  const cache = section(storage, "cache");
  const maintenance = section(storage, "maintenance");
  const purging = section(maintenance, "uploadpurging");
  const gc = section(storage, "gc");
  const scrub = section(storage, "scrub");
  const retention = section(storage, "retention");
  const tls = section(http, "tls");
  const secret = text(http.secret);
  return {
    log: {
      level: (text(log.level) ?? text(raw.loglevel) ?? "info") as LogLevel,
      formatter: text(log.formatter),
      fields: section(log, "fields"),
      accessLogDisabled: asBool(section(log, "accesslog").disabled) ?? false,
    },
    storage: {
      driver,
      parameters: section(storage, driver),
      deleteEnabled: asBool(section(storage, "delete").enabled) ?? false,
      redirectDisabled: asBool(section(storage, "redirect").disable) ?? false,
      blobDescriptorCache: (text(cache.blobdescriptor) ?? text(cache.layerinfo)) as StorageConfig["blobDescriptorCache"],
      blobDescriptorCacheSize: asInt(cache.blobdescriptorsize) ?? 10_000,
      uploadPurging: {
        enabled: asBool(purging.enabled) ?? true,
        ageMs: durationMs(purging.age, 168 * 3_600_000),
        intervalMs: durationMs(purging.interval, 24 * 3_600_000),
        dryRun: asBool(purging.dryrun) ?? false,
      },
      readOnly: asBool(section(maintenance, "readonly").enabled) ?? false,
      gc: {
        enabled: asBool(gc.enabled) ?? false,
        intervalMs: durationMs(gc.interval, 24 * 3_600_000),
        delayMs: durationMs(gc.delay, 3_600_000),
      },
      retention: {
        enabled: asBool(retention.enabled) ?? false,
        intervalMs: durationMs(retention.interval, 24 * 3_600_000),
        rules: (Array.isArray(retention.rules) ? (retention.rules as unknown[]) : []).map(retentionRule),
      },
      scrub: {
        enabled: asBool(scrub.enabled) ?? false,
        intervalMs: durationMs(scrub.interval, 7 * 24 * 3_600_000),
        rateMiBps: asInt(scrub.rate) ?? 50,
      },
      minFree: minFree(section(storage, "filesystem").minfree),
    },
    http: {
      addr: text(http.addr) ?? ":5000",
      net: text(http.net) === "unix" ? "unix" : "tcp",
      host: text(http.host)?.replace(/\/+$/, ""),
      prefix: normalizePrefix(text(http.prefix)),
      secret: secret ?? randomBytes(32).toString("hex"),
      relativeUrls: asBool(http.relativeurls) ?? false,
      headers: headers(section(http, "headers")),
      tls: tls.certificate
        ? {
            certificate: String(tls.certificate),
            key: String(tls.key),
            minimumTls: text(tls.minimumtls) as TlsConfig["minimumTls"],
            clientCas: list(tls.clientcas),
            cipherSuites: list(tls.ciphersuites),
          }
        : undefined,
      drainTimeoutMs: durationMs(http.draintimeout, 0),
    },
    catalog: { maxEntries: asInt(section(raw, "catalog").maxentries) ?? 1000 },
    debug: debugConfig(http),
    notifications: notificationsConfig(section(raw, "notifications")),
    console: {
      enabled: asBool(section(raw, "console").enabled) ?? false,
      path: `${normalizePrefix(text(section(raw, "console").path) ?? "/ui/")}/`,
    },
    auth: authConfig(section(raw, "auth")),
    etcd: etcdConfig(raw.etcd),
    proxy: proxyConfig(raw.proxy),
    cluster: clusterConfig(raw),
    raw,
  };
}
