import { Etcd3, type IOptions, type Watcher } from "etcd3";
import { readFileSync } from "node:fs";
import { ConfigError } from "./config-error.js";

/** The `etcd` section (ours): where the LAIN cluster keeps settings the registry follows live. */
export interface EtcdConfig {
  endpoints: string[];
  /** The key the console writes auth settings to; default /lain/config/auth/registry. */
  authKey: string;
  /** The key that switches read-only mode; default /lain/config/registry/readonly. */
  readOnlyKey: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
}

const RETRY_MS = 2000;

function readAt(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(key, `${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Client options from the `etcd` section: endpoints, TLS files (a ConfigError when unreadable), user and password. */
export function etcdClientOptions(config: EtcdConfig): IOptions {
  const options: IOptions = { hosts: config.endpoints, dialTimeout: 3000 };
  if (config.caFile) {
    options.credentials = {
      rootCertificate: readAt(config.caFile, "etcd.cafile"),
      ...(config.keyFile ? { privateKey: readAt(config.keyFile, "etcd.keyfile") } : {}),
      ...(config.certFile ? { certChain: readAt(config.certFile, "etcd.certfile") } : {}),
    };
  }
  if (config.username && config.password) options.auth = { username: config.username, password: config.password };
  return options;
}

/**
 * Ends a watch before its client closes: with a watch still open, a closed client leaves a
 * socket behind whenever another client exists in the process, and the process never exits.
 */
function cancelWatch(watcher: Watcher | undefined): void {
  void watcher?.cancel().catch(() => undefined);
}

/**
 * One live etcd client and its watch: replaced wholesale when a connection is lost (etcd3's own
 * backoff can wait far longer than the 2 s here), closed cleanly when done.
 */
export class EtcdSession {
  private client: Etcd3 | undefined;
  private watcher: Watcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly config: EtcdConfig,
    private readonly connect: () => void,
  ) {}

  /** A fresh client, the previous one and its watch closed; undefined once the session is closed. */
  renew(): Etcd3 | undefined {
    if (this.stopped) return undefined;
    cancelWatch(this.watcher);
    this.client?.close();
    this.client = new Etcd3(etcdClientOptions(this.config));
    return this.client;
  }

  watching(watcher: Watcher): void {
    this.watcher = watcher;
  }

  isCurrent(client: Etcd3): boolean {
    return this.client === client;
  }

  /** Connects again in a moment, once however often asked. */
  retrySoon(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect();
    }, RETRY_MS);
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    cancelWatch(this.watcher);
    this.client?.close();
  }
}

/** A watched key as health and metrics report it. */
export interface WatchedKey {
  key: string;
  connected(): boolean;
}

/**
 * Follows one key: its value at start and every change (null when deleted). When etcd is down
 * it says so and reconnects every 2 s with a fresh client (the library's own backoff can wait
 * far longer); the last value stays in force meanwhile.
 */
export class EtcdKeyWatch {
  connected = false;
  private readonly session: EtcdSession;

  constructor(
    private readonly config: EtcdConfig,
    readonly key: string,
    private readonly onValue: (text: string | null) => Promise<void>,
    private readonly onTrouble: (message: string) => void,
  ) {
    this.session = new EtcdSession(config, () => void this.connect());
  }

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    try {
      // Inside: its TLS files are read again, and may have gone since the start.
      const client = this.session.renew();
      if (!client) return;
      const current = await client.get(this.key).exec();
      // Watch from just after what was read, so no change falls between the two.
      const watcher = await client.watch().key(this.key).startRevision(String(Number(current.header.revision) + 1)).create();
      this.session.watching(watcher);
      watcher.on("put", (kv) => void this.onValue(kv.value.toString("utf8")));
      watcher.on("delete", () => void this.onValue(null));
      watcher.on("disconnected", () => {
        if (!this.session.isCurrent(client)) return;
        this.connected = false;
        this.onTrouble(`lost the etcd connection; keeping the value of ${this.key}`);
        this.session.retrySoon();
      });
      this.connected = true;
      await this.onValue(current.kvs[0]?.value.toString("utf8") ?? null);
    } catch (err) {
      this.connected = false;
      this.onTrouble(`etcd at ${this.config.endpoints.join(",")} is unreachable (${(err as Error).message}); retrying`);
      this.session.retrySoon();
    }
  }

  close(): void {
    this.session.close();
  }
}
