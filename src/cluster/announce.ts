import { Etcd3, type Lease } from "etcd3";
import type { Logger } from "pino";
import type { ClusterConfig } from "../config/config.js";
import { etcdClientOptions, type EtcdConfig } from "../etcd/client.js";
import { VERSION } from "../version.js";

/** What an instance's key holds: what the upstream file needs, and what an operator reads. */
export interface Registration {
  address: string;
  role: "primary" | "mirror";
  version: string;
  started: string;
}

const CHECK_MS = 1000;

function isRegistration(value: unknown): value is Registration {
  const r = value as Partial<Registration> | null;
  return typeof r?.address === "string" && URL.canParse(r.address) && (r.role === "primary" || r.role === "mirror");
}

/** The registrations among the values under the prefix; anything else there is ignored. */
export function parseRegistrations(values: string[]): Registration[] {
  return values.flatMap((text) => {
    try {
      const value = JSON.parse(text) as unknown;
      return isRegistration(value) ? [value] : [];
    } catch {
      return [];
    }
  });
}

/** The key of an instance: its advertised host and port, unique among instances. */
export function registrationKey(cluster: ClusterConfig): string {
  return `${cluster.prefix}/${new URL(cluster.advertise).host}`;
}

/**
 * Keeps this instance registered in etcd on a lease while it is healthy: a crashed instance's key
 * vanishes when the lease expires (cluster.ttl), an unhealthy one withdraws it, and etcd coming
 * back after an outage gets the registration again. Checked every second.
 */
export class Announcer {
  readonly state: { registered: boolean; lastError: string | undefined } = { registered: false, lastError: undefined };
  private client: Etcd3 | undefined;
  private lease: Lease | undefined;
  private timer: NodeJS.Timeout | undefined;
  private withdrawn = false;
  private busy = false;
  private readonly registration: Registration;

  constructor(
    private readonly etcd: EtcdConfig,
    private readonly cluster: ClusterConfig,
    private readonly healthy: () => Promise<boolean>,
    private readonly log: Logger,
  ) {
    this.registration = { address: cluster.advertise, role: cluster.role, version: VERSION, started: new Date().toISOString() };
  }

  start(): void {
    void this.reconcile();
  }

  /** Every instance registered under the prefix now, this one included (for the console). */
  async instances(): Promise<Registration[]> {
    this.client ??= new Etcd3(etcdClientOptions(this.etcd));
    const all = await this.client.getAll().prefix(`${this.cluster.prefix}/`).strings();
    return parseRegistrations(Object.values(all)).sort((a, b) => a.address.localeCompare(b.address));
  }

  private async reconcile(): Promise<void> {
    if (this.busy || this.withdrawn) return;
    this.busy = true;
    try {
      const wanted = await this.healthy();
      if (wanted && !this.lease) await this.register();
      else if (!wanted && this.lease) {
        this.log.warn({ key: registrationKey(this.cluster) }, "cluster: unhealthy; withdrawing the registration");
        await this.revoke();
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.busy = false;
      if (!this.withdrawn) this.timer = setTimeout(() => void this.reconcile(), CHECK_MS);
    }
  }

  private async register(): Promise<void> {
    this.client ??= new Etcd3(etcdClientOptions(this.etcd));
    const lease = this.client.lease(this.cluster.leaseSeconds);
    lease.on("lost", (err: Error) => {
      if (this.lease !== lease) return;
      this.lease = undefined;
      this.state.registered = false;
      this.fail(err);
      // A fresh client after an outage: the old one's connections may be stuck.
      this.client?.close();
      this.client = undefined;
    });
    try {
      await lease.put(registrationKey(this.cluster)).value(JSON.stringify(this.registration));
    } catch (err) {
      lease.release();
      throw err;
    }
    if (this.withdrawn) {
      await lease.revoke();
      return;
    }
    this.lease = lease;
    this.state.registered = true;
    this.state.lastError = undefined;
    this.log.info({ key: registrationKey(this.cluster), ...this.registration }, "cluster: registered in etcd");
  }

  private async revoke(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    this.state.registered = false;
    await lease?.revoke();
  }

  private fail(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (message !== this.state.lastError) this.log.warn({ err: message }, "cluster: etcd registration failed; retrying");
    this.state.lastError = message;
  }

  /** For GET /health. */
  health(): Record<string, unknown> {
    return {
      role: this.cluster.role,
      advertise: this.cluster.advertise,
      key: registrationKey(this.cluster),
      registered: this.state.registered,
      ...(this.state.lastError ? { error: this.state.lastError } : {}),
    };
  }

  /** Removes the registration for good (shutdown): the key goes with the revoked lease. */
  async withdraw(): Promise<void> {
    if (this.withdrawn) return;
    this.withdrawn = true;
    clearTimeout(this.timer);
    try {
      await this.revoke();
    } catch (err) {
      this.fail(err);
    }
    this.client?.close();
  }
}
