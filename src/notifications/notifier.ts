import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { NotificationsConfig } from "../config/config.js";
import type { Metrics } from "../metrics/metrics.js";
import { Endpoint } from "./endpoint.js";
import type { EventInput, RegistryEvent } from "./events.js";

/** distribution's notifications: every event goes to each endpoint's own queue. */
export class Notifier {
  private readonly endpoints: Endpoint[];
  private readonly source: RegistryEvent["source"];

  constructor(
    readonly config: NotificationsConfig,
    /** http.addr: its port goes into the events' source (host:port); a unix socket has none. */
    listenAddress: string,
    metrics: Metrics,
    log: Logger,
  ) {
    this.endpoints = config.endpoints.map((endpoint) => new Endpoint(endpoint, metrics, log));
    const colon = listenAddress.lastIndexOf(":");
    this.source = { addr: colon >= 0 ? `${hostname()}:${listenAddress.slice(colon + 1)}` : hostname(), instanceID: randomUUID() };
  }

  publish(input: EventInput): void {
    const event: RegistryEvent = { id: randomUUID(), timestamp: new Date().toISOString(), ...input, source: this.source };
    for (const endpoint of this.endpoints) endpoint.enqueue(event);
  }

  close(graceMs: number): Promise<void> {
    return Promise.all(this.endpoints.map((endpoint) => endpoint.close(graceMs))).then(() => undefined);
  }
}
