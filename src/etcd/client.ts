import { Etcd3, type IKeyValue, type IOptions, type IRangeResponse, type Watcher, type WatchBuilder } from "etcd3";
import { readFileSync } from "node:fs";
import { ConfigError } from "../refusal.js";

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
/** How long a read or the start of a watch may go unanswered before the connection counts as lost. */
const CALL_MS = 5000;

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

/** Rejects when `work` has not settled within CALL_MS: etcd3 sets no deadline of its own. */
function withinDeadline<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} unanswered for ${CALL_MS} ms`)), CALL_MS);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** What an etcd follower reads, watches and tells. */
export interface Following<R extends { header: { revision: string } }> {
  read(client: Etcd3): Promise<R>;
  /** The watch, started just after the revision of the read so that no change falls between. */
  watch(client: Etcd3): WatchBuilder;
  /** The read, then every change (deleted: the key's deletion), one at a time in etcd's order. */
  found(read: R): Promise<void> | void;
  changed(kv: IKeyValue, deleted: boolean, client: Etcd3): Promise<void> | void;
  /** The connection is lost or etcd cannot be reached; what was told last stays in force. */
  trouble(problem: { lost: true } | { lost: false; error: string }): void;
}

/**
 * Follows what a `Following` reads and watches. A lost connection is replaced wholesale with a
 * fresh client every 2 s (etcd3's own backoff can wait far longer), and a read or watch that
 * etcd leaves unanswered counts as lost. Values are told in order, each after the previous one
 * was applied: applying can take I/O (a token issuer's certificates), and an older value that
 * finished last would otherwise stay in force.
 */
export class EtcdFollower<R extends { header: { revision: string } }> {
  connected = false;
  private client: Etcd3 | undefined;
  private watcher: Watcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private telling: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: EtcdConfig,
    private readonly following: Following<R>,
  ) {}

  start(): void {
    void this.connect();
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    cancelWatch(this.watcher);
    this.client?.close();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    cancelWatch(this.watcher);
    this.client?.close();
    this.connected = false;
    let client: Etcd3 | undefined;
    const current = () => !this.stopped && this.client === client;
    try {
      // Inside the try: its TLS files are read again, and may have gone since the start.
      client = this.client = new Etcd3(etcdClientOptions(this.config));
      const read = await withinDeadline(this.following.read(client), "the read");
      if (!current()) return;
      this.tell(() => this.following.found(read));
      const watcher = (this.watcher = this.following.watch(client).startRevision(String(Number(read.header.revision) + 1)).watcher());
      watcher.on("put", (kv) => current() && this.tell(() => this.following.changed(kv, false, client!)));
      watcher.on("delete", (kv) => current() && this.tell(() => this.following.changed(kv, true, client!)));
      await withinDeadline(
        new Promise<void>((resolve, reject) => {
          watcher.once("connected", () => resolve());
          watcher.once("disconnected", (err: Error) => reject(err));
          watcher.on("error", (err: Error) => reject(err));
        }),
        "the watch",
      );
      if (!current()) return;
      this.connected = true;
      // After the start a lost stream or a watch etcd cancels (compaction) both mean: connect again.
      const lost = () => {
        if (!current()) return;
        this.connected = false;
        this.following.trouble({ lost: true });
        this.retrySoon();
      };
      watcher.on("disconnected", lost);
      watcher.on("error", lost);
    } catch (err) {
      if (!current()) return;
      this.connected = false;
      this.following.trouble({ lost: false, error: (err as Error).message });
      this.retrySoon();
    }
  }

  private tell(apply: () => Promise<void> | void): void {
    this.telling = this.telling.then(apply).catch((err: unknown) => this.following.trouble({ lost: false, error: (err as Error).message }));
  }

  /** Connects again in a moment, once however often asked. */
  private retrySoon(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, RETRY_MS);
  }
}

/** A watched key as health and metrics report it. */
export interface WatchedKey {
  key: string;
  connected(): boolean;
}

/**
 * Follows one key: its value at start and every change (null when deleted). When etcd is down
 * it says so and reconnects; the last value stays in force meanwhile.
 */
export class EtcdKeyWatch {
  private readonly follower: EtcdFollower<IRangeResponse>;

  constructor(
    config: EtcdConfig,
    readonly key: string,
    onValue: (text: string | null) => Promise<void>,
    onTrouble: (message: string) => void,
  ) {
    this.follower = new EtcdFollower(config, {
      read: (client) => client.get(key).exec(),
      watch: (client) => client.watch().key(key),
      found: (read) => onValue(read.kvs[0]?.value.toString("utf8") ?? null),
      changed: (kv, deleted) => onValue(deleted ? null : kv.value.toString("utf8")),
      trouble: (problem) =>
        onTrouble(
          problem.lost
            ? `lost the etcd connection; keeping the value of ${key}`
            : `etcd at ${config.endpoints.join(",")} is unreachable (${problem.error}); retrying`,
        ),
    });
  }

  get connected(): boolean {
    return this.follower.connected;
  }

  start(): void {
    this.follower.start();
  }

  close(): void {
    this.follower.close();
  }
}
