import type { Logger } from "pino";
import type { NotificationEndpointConfig } from "../config/config.js";
import type { Metrics } from "../metrics/metrics.js";
import { EVENTS_MEDIA_TYPE, type RegistryEvent } from "./events.js";

/** Events sent in one envelope when a backlog has built up. */
const MAX_BATCH = 32;

/**
 * One listener: a bounded in-memory queue and one delivery loop. Events go out in order, in
 * envelopes, until the endpoint answers 2xx or 3xx; after `threshold` failures in a row each
 * retry waits `backoff`. A full queue drops its oldest event. Nothing here ever waits on, or
 * fails, the request that produced an event.
 */
export class Endpoint {
  private readonly queue: RegistryEvent[] = [];
  private running = false;
  private closed = false;
  private failures = 0;
  private readonly abort = new AbortController();
  private idle: Promise<void> = Promise.resolve();
  private readonly headers: Record<string, string>;

  constructor(
    readonly config: NotificationEndpointConfig,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.headers = { "content-type": EVENTS_MEDIA_TYPE };
    for (const [name, values] of Object.entries(config.headers)) this.headers[name.toLowerCase()] = values.join(", ");
  }

  /** Whether this endpoint wants the event (ignore.actions, ignore.mediatypes). */
  wants(event: RegistryEvent): boolean {
    const { ignoredActions, ignoredMediaTypes } = this.config;
    return !ignoredActions.includes(event.action) && !(event.target.mediaType !== undefined && ignoredMediaTypes.includes(event.target.mediaType));
  }

  enqueue(event: RegistryEvent): void {
    if (this.closed || !this.wants(event)) return;
    if (this.queue.length >= this.config.queueSize) {
      this.queue.shift();
      this.count("dropped");
    }
    this.queue.push(event);
    this.pending();
    if (!this.running) {
      this.running = true;
      this.idle = this.deliverAll();
    }
  }

  /** Gives the queue up to `graceMs` to empty, then stops retrying and drops the rest. */
  async close(graceMs: number): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([this.idle, late]);
    clearTimeout(timer);
    this.abort.abort();
    await this.idle;
    if (this.queue.length > 0) {
      this.log.warn({ endpoint: this.config.name, events: this.queue.length }, "notifications: stopping with events undelivered");
      this.count("dropped", this.queue.length);
      this.queue.length = 0;
      this.pending();
    }
  }

  private async deliverAll(): Promise<void> {
    while (this.queue.length > 0 && !this.abort.signal.aborted) {
      const batch = this.queue.slice(0, MAX_BATCH);
      if (this.failures >= this.config.threshold) await this.wait(this.config.backoffMs);
      if (this.abort.signal.aborted) break;
      if (await this.send(batch)) {
        this.failures = 0;
        // The oldest may have been dropped meanwhile: remove exactly what was sent.
        for (const event of batch) {
          const at = this.queue.indexOf(event);
          if (at >= 0) this.queue.splice(at, 1);
        }
        this.count("delivered", batch.length);
        this.pending();
      } else {
        this.failures++;
        this.count("failed", batch.length);
      }
    }
    this.running = false;
  }

  private async send(events: RegistryEvent[]): Promise<boolean> {
    const { name, url, timeoutMs } = this.config;
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: this.headers,
        body: JSON.stringify({ events }),
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(timeoutMs)]),
        redirect: "manual",
      });
      await res.body?.cancel();
      this.metrics.notificationStatus.inc({ endpoint: name, code: String(res.status) });
      if (res.status >= 200 && res.status < 400) return true;
      this.log.warn({ endpoint: name, status: res.status, failures: this.failures + 1 }, "notifications: endpoint refused events; retrying");
    } catch (err) {
      this.log.warn({ endpoint: name, err: String(err), failures: this.failures + 1 }, "notifications: endpoint unreachable; retrying");
    }
    return false;
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.abort.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }

  private count(result: "delivered" | "failed" | "dropped", n = 1): void {
    this.metrics.notificationEvents.inc({ endpoint: this.config.name, result }, n);
  }

  private pending(): void {
    this.metrics.notificationsPending.set({ endpoint: this.config.name }, this.queue.length);
  }
}
