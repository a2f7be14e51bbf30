import { EtcdKeyWatch, type EtcdConfig } from "../etcd/client.js";

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
  private lastError: string | undefined;
  private readonly watch: EtcdKeyWatch;

  constructor(
    config: EtcdConfig,
    private readonly onValue: (value: EtcdAuthValue | null) => Promise<void>,
    private readonly onError: (message: string) => void,
  ) {
    this.watch = new EtcdKeyWatch(config, config.authKey, (text) => this.apply(text), (message) => this.fail(message));
  }

  get state(): OverlayState {
    return { connected: this.watch.connected, lastError: this.lastError };
  }

  /** Starts watching; when etcd is down it keeps retrying in the background. */
  start(): void {
    this.watch.start();
  }

  private fail(message: string): void {
    this.lastError = message;
    this.onError(message);
  }

  private async apply(text: string | null): Promise<void> {
    if (text === null) return this.onValue(null);
    let value: EtcdAuthValue;
    try {
      value = parseValue(text);
    } catch (err) {
      return this.fail(`${this.watch.key} holds an invalid value (${(err as Error).message}); keeping the last good auth settings`);
    }
    try {
      await this.onValue(value);
      this.lastError = undefined;
    } catch (err) {
      this.fail(`${this.watch.key} could not be applied (${(err as Error).message}); keeping the last good auth settings`);
    }
  }

  close(): void {
    this.watch.close();
  }
}
