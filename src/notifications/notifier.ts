import { randomUUID } from "node:crypto";
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
    /** The events' source: this host and the port it serves (distribution: os.Hostname() and the port). */
    sourceAddress: string,
    metrics: Metrics,
    log: Logger,
  ) {
    this.endpoints = config.endpoints.map((endpoint) => new Endpoint(endpoint, metrics, log));
    this.source = { addr: sourceAddress, instanceID: randomUUID() };
  }

  publish(input: EventInput): void {
    const event: RegistryEvent = { id: randomUUID(), timestamp: new Date().toISOString(), ...input, source: this.source };
    for (const endpoint of this.endpoints) endpoint.enqueue(event);
  }

  close(graceMs: number): Promise<void> {
    return Promise.all(this.endpoints.map((endpoint) => endpoint.close(graceMs))).then(() => undefined);
  }
}
