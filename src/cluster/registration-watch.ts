import type { Etcd3 } from "etcd3";
import type { Logger } from "pino";
import { EtcdSession, type EtcdConfig } from "../config/etcd-key.js";
import { parseRegistrations, type Registration } from "./announce.js";

/**
 * Follows the registrations under a prefix: told of all of them at start and after every
 * change. When etcd is down it says so and reconnects with a fresh client; the last
 * registrations told stay in force meanwhile (`what` names them in the log).
 */
export class RegistrationWatch {
  private readonly session: EtcdSession;

  constructor(
    etcd: EtcdConfig,
    private readonly prefix: string,
    private readonly changed: (registrations: Registration[]) => void,
    private readonly log: Logger,
    private readonly what: string,
  ) {
    this.session = new EtcdSession(etcd, () => void this.connect());
  }

  start(): void {
    void this.connect();
  }

  stop(): void {
    this.session.close();
  }

  private async connect(): Promise<void> {
    const prefix = `${this.prefix}/`;
    try {
      // Inside: its TLS files are read again, and may have gone since the start.
      const client = this.session.renew();
      if (!client) return;
      const current = await client.getAll().prefix(prefix).exec();
      const watcher = await client.watch().prefix(prefix).startRevision(String(Number(current.header.revision) + 1)).create();
      this.session.watching(watcher);
      const refresh = () => void this.refresh(client, prefix);
      watcher.on("put", refresh);
      watcher.on("delete", refresh);
      watcher.on("disconnected", () => {
        if (!this.session.isCurrent(client)) return;
        this.log.warn(`cluster: lost etcd; keeping ${this.what}`);
        this.session.retrySoon();
      });
      this.changed(parseRegistrations(current.kvs.map((kv) => kv.value.toString("utf8"))));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, `cluster: etcd unreachable; keeping ${this.what}, retrying`);
      this.session.retrySoon();
    }
  }

  private async refresh(client: Etcd3, prefix: string): Promise<void> {
    try {
      const all = await client.getAll().prefix(prefix).strings();
      this.changed(parseRegistrations(Object.values(all)));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, `cluster: reading the registrations failed; keeping ${this.what}`);
    }
  }
}
