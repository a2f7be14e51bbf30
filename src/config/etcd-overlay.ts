import { Etcd3, type IOptions, type Watcher } from "etcd3";
import { readFileSync } from "node:fs";

/** The `etcd` section (ours): where the LAIN cluster keeps the registry's auth settings. */
export interface EtcdConfig {
  endpoints: string[];
  /** The key the console writes; default /lain/config/auth/registry. */
  authKey: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
}

/** What `etcdctl set /lain/config/auth/registry '{...}'` holds. */
export interface EtcdAuthValue {
  realm?: string;
  issuer?: string;
  service?: string;
  rootcertbundle?: string;
}

export interface OverlayState {
  connected: boolean;
  /** The last problem: etcd unreachable, or a value that could not be used. */
  lastError: string | undefined;
}

const RETRY_MS = 2000;

/**
 * Ends a watch before its client closes: with a watch still open, a closed client leaves a
 * socket behind whenever another client exists in the process, and the process never exits.
 */
export function cancelWatch(watcher: Watcher | undefined): void {
  void watcher?.cancel().catch(() => undefined);
}

/** Client options from the `etcd` section: endpoints, TLS files, user and password. */
export function etcdClientOptions(config: EtcdConfig): IOptions {
  const options: IOptions = { hosts: config.endpoints, dialTimeout: 3000 };
  if (config.caFile) {
    options.credentials = {
      rootCertificate: readFileSync(config.caFile),
      ...(config.keyFile ? { privateKey: readFileSync(config.keyFile) } : {}),
      ...(config.certFile ? { certChain: readFileSync(config.certFile) } : {}),
    };
  }
  if (config.username && config.password) options.auth = { username: config.username, password: config.password };
  return options;
}

function parseValue(text: string): EtcdAuthValue {
  const value = JSON.parse(text) as unknown;
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("the value is not a JSON object");
  const out: EtcdAuthValue = {};
  for (const key of ["realm", "issuer", "service", "rootcertbundle"] as const) {
    const v = (value as Record<string, unknown>)[key];
    if (v === undefined) continue;
    if (typeof v !== "string" || v === "") throw new Error(`${key} must be a non-empty string`);
    out[key] = v;
  }
  return out;
}

/**
 * Watches the auth key and reports every value it takes (null when deleted). A value that
 * is not valid JSON is reported as an error, never as "deleted": the registry must not fall
 * open because someone wrote garbage or etcd hiccuped.
 */
export class EtcdAuthOverlay {
  readonly state: OverlayState = { connected: false, lastError: undefined };
  private readonly options: IOptions;
  private client: Etcd3 | undefined;
  private watcher: Watcher | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: EtcdConfig,
    private readonly onValue: (value: EtcdAuthValue | null) => Promise<void>,
    private readonly onError: (message: string) => void,
  ) {
    this.options = etcdClientOptions(config);
  }

  /** Starts watching; when etcd is down it keeps retrying in the background. */
  start(): void {
    void this.connect();
  }

  private fail(message: string): void {
    this.state.lastError = message;
    this.onError(message);
  }

  private async apply(text: string | null): Promise<void> {
    if (text === null) return this.onValue(null);
    let value: EtcdAuthValue;
    try {
      value = parseValue(text);
    } catch (err) {
      return this.fail(`${this.config.authKey} holds an invalid value (${(err as Error).message}); keeping the last good auth settings`);
    }
    try {
      await this.onValue(value);
      this.state.lastError = undefined;
    } catch (err) {
      this.fail(`${this.config.authKey} could not be applied (${(err as Error).message}); keeping the last good auth settings`);
    }
  }

  /** Tries again soon with a fresh client (the library's own backoff can wait far longer). */
  private reconnectSoon(): void {
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.connect();
    }, RETRY_MS);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    cancelWatch(this.watcher);
    this.client?.close();
    const client = new Etcd3(this.options);
    this.client = client;
    try {
      const current = await client.get(this.config.authKey).exec();
      // Watch from just after what was read, so no change falls between the two.
      const watcher = await client
        .watch()
        .key(this.config.authKey)
        .startRevision(String(Number(current.header.revision) + 1))
        .create();
      this.watcher = watcher;
      watcher.on("put", (kv) => void this.apply(kv.value.toString("utf8")));
      watcher.on("delete", () => void this.apply(null));
      watcher.on("disconnected", () => {
        if (this.client !== client) return;
        this.state.connected = false;
        this.fail("lost the etcd connection; keeping the current auth settings");
        this.reconnectSoon();
      });
      this.state.connected = true;
      await this.apply(current.kvs[0]?.value.toString("utf8") ?? null);
    } catch (err) {
      this.state.connected = false;
      this.fail(`etcd at ${this.config.endpoints.join(",")} is unreachable (${(err as Error).message}); retrying`);
      this.reconnectSoon();
    }
  }

  close(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    cancelWatch(this.watcher);
    this.client?.close();
  }
}
