import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { Authenticator } from "../auth/authenticator.js";
import type { HttpConfig, StorageConfig } from "../config/config.js";
import type { Registry } from "../registry/registry.js";

/** What every handler may use: the domain, the settings it needs, and the request. */
export interface AppContext {
  registry: Registry;
  http: HttpConfig;
  storage: StorageConfig;
  catalogMaxEntries: number;
  log: Logger;
  /** Absent: no authentication (distribution without an auth section). */
  auth?: Authenticator;
  /** What GET /health reports beyond "up"; a part with `error` makes the status "degraded". */
  health?: () => Promise<Record<string, unknown>>;
  /** Set when the instance is stopping: new upload sessions are refused, /health answers 503. */
  lifecycle: { draining: boolean };
  /** Read-only mode, as the file or etcd sets it now: writes answer 405 UNSUPPORTED. */
  readOnly: { enabled: boolean };
}

export interface RequestContext {
  app: AppContext;
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Route parameters, already checked against their grammars by the router. */
  params: Record<string, string>;
  head: boolean;
}

export type Handler = (ctx: RequestContext) => Promise<void>;
