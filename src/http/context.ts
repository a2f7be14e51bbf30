import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { Access } from "../auth/access.js";
import type { Authenticator } from "../auth/authenticator.js";
import type { HttpConfig, StorageConfig } from "../config/config.js";
import type { ConsoleApi } from "../console/api.js";
import type { Asset } from "../console/assets.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Notifier } from "../notifications/notifier.js";
import type { RegistryError } from "../registry/errors.js";
import type { Namespace } from "../registry/repository.js";
import type { Digest } from "../registry/digest.js";
import type { RepositoryName } from "../registry/names.js";
import type { SiblingHeartbeat } from "./sibling-heartbeat.js";

/** What every handler may use, by concern: the domain, the settings, who may do what, what is reported. */
export interface AppContext {
  /** The repositories clients see (a mirror: pulled through). */
  registry: Namespace;
  settings: Settings;
  access: AccessRules;
  telemetry: Telemetry;
  /** Set when the instance is stopping: new upload sessions are refused, /health answers 503. */
  lifecycle: { draining: boolean };
  /**
   * The web console under `path` ("/ui/"), when console.enabled, with its handler (its modules
   * load only then).
   */
  console?: { path: string; api: ConsoleApi; assets: Map<string, Asset>; serve: (ctx: RequestContext, authorize: (ctx: RequestContext, required: Access[]) => Promise<void>) => Promise<void> };
  /** notifications.endpoints; absent when none are configured. */
  notifier?: Notifier;
  /** storage.retention: when each manifest was pulled (absent without rules: nothing reads it). */
  pulls?: { record(name: RepositoryName, digest: Digest): void };
}

/** The configuration requests are served under. */
export interface Settings {
  http: HttpConfig;
  storage: StorageConfig;
  catalogMaxEntries: number;
}

/** Who may do what: authentication, read-only mode, and a mirror's rules for writes and siblings. */
export interface AccessRules {
  /** Absent: no authentication (distribution without an auth section). */
  auth?: Authenticator;
  /** Read-only mode, as the file or etcd sets it now: writes answer 405 UNSUPPORTED. */
  readOnly: { enabled: boolean };
  /**
   * A mirror's mark on the requests it sends its peer: one that comes back here with it means
   * proxy.remoteurl leads back to this mirror, and is refused at once.
   */
  ownHop?: { header: string; value: string };
  /** A mirror's namespaces: what it will not write there, and what its siblings may read. */
  mirrored?: {
    includes(name: string): boolean;
    /** Why a request needing these accesses may not write here; undefined when it may. */
    writeRefusal(required: readonly Access[]): Promise<RegistryError | undefined>;
  };
  /** When proxy.siblings is on: how sibling mirrors' requests are checked and answered. */
  siblings?: SiblingAnswers;
}

export interface SiblingAnswers {
  /** http.secret: sibling mirrors sign their requests with it. */
  secret: string;
  heartbeat: SiblingHeartbeat;
  /** proxy.siblings.addr: their own listener, and then the only one they may come to; undefined: http.addr. */
  addr: string | undefined;
  /** What a sibling's request sees (`from`: the address it names itself by; `rate`: its receive rate): never forwarded to another sibling (one hop). */
  namespaceFor(asking: { from: string | undefined; rate: number | undefined }): Namespace;
}

/** What the instance reports: its log, metrics and health. */
export interface Telemetry {
  log: Logger;
  /** One info line per request (log.accesslog.disabled turns it off). */
  accessLog: boolean;
  metrics: Metrics;
  /** Where the main port also answers GET with the metrics; absent: only the debug server does. */
  metricsPath?: string;
  /** What GET /health reports beyond "up"; a part with `error` makes the status "degraded". */
  health?: () => Promise<Record<string, unknown>>;
}

/**
 * Which requests a listener takes: the users' (http.addr), or only sibling mirrors' signed ones
 * (proxy.siblings.addr), everything else refused.
 */
export type Door = "users" | "siblings";

export interface RequestContext {
  app: AppContext;
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Route parameters, already checked against their grammars by the router. */
  params: Record<string, string>;
  method: string;
  head: boolean;
  /** X-Request-Id: the load balancer's, or generated; in the access log, error logs and events. */
  id: string;
  /**
   * The client's address, read as the request arrives: logs, metrics and events that run after
   * the connection is gone (its socket detached) read it here, never from the socket.
   */
  remoteAddress: string | undefined;
  /** Who authenticated, when auth is on. */
  user: string | undefined;
  /** Why the access controller refused the request, and who tried, for its access line. */
  refusedAuth?: { reason: string; user?: string };
  /** The repositories this request sees: chosen as it enters (a sibling mirror's, once its signature is checked). */
  registry: Namespace;
  /** A sibling mirror (its signature checked) instead of a client. */
  fromSibling: boolean;
}

export type Handler = (ctx: RequestContext) => Promise<void>;
