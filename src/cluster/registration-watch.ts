import type { Etcd3, IRangeResponse } from "etcd3";
import type { Logger } from "pino";
import { EtcdFollower, type EtcdConfig } from "../etcd/client.js";
import { parseRegistrations, type Registration } from "./announce.js";

/**
 * Follows the registrations under a prefix: told of all of them at start and after every
 * change. When etcd is down it says so and reconnects with a fresh client; the last
 * registrations told stay in force meanwhile (`what` names them in the log).
 */
export class RegistrationWatch {
  private readonly follower: EtcdFollower<IRangeResponse>;

  constructor(etcd: EtcdConfig, prefix: string, changed: (registrations: Registration[]) => void, log: Logger, what: string) {
    const under = `${prefix}/`;
    const tell = (values: string[]) => changed(parseRegistrations(values));
    // A change is read back whole: one registration's event says nothing of the others.
    const reread = async (client: Etcd3) => {
      try {
        tell(Object.values(await client.getAll().prefix(under).strings()));
      } catch (err) {
        log.warn({ err: (err as Error).message }, `cluster: reading the registrations failed; keeping ${what}`);
      }
    };
    this.follower = new EtcdFollower(etcd, {
      read: (client) => client.getAll().prefix(under).exec(),
      watch: (client) => client.watch().prefix(under),
      found: (read) => tell(read.kvs.map((kv) => kv.value.toString("utf8"))),
      changed: (_kv, _deleted, client) => reread(client),
      trouble: (problem) =>
        problem.lost
          ? log.warn(`cluster: lost etcd; keeping ${what}`)
          : log.warn({ err: problem.error }, `cluster: etcd unreachable; keeping ${what}, retrying`),
    });
  }

  start(): void {
    this.follower.start();
  }

  stop(): void {
    this.follower.close();
  }
}
