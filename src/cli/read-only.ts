import type { Logger } from "pino";
import type { RegistryConfig } from "../config/config.js";
import type { WatchedKey } from "../etcd/client.js";

export interface ReadOnlyState {
  enabled: boolean;
  source: "file" | "etcd";
}

/** "true", "false", or JSON such as {"enabled": true}; undefined for anything else. */
export function parseReadOnly(text: string): boolean | undefined {
  try {
    const value = JSON.parse(text.trim()) as unknown;
    if (typeof value === "boolean") return value;
    const enabled = (value as { enabled?: unknown } | null)?.enabled;
    return typeof enabled === "boolean" ? enabled : undefined;
  } catch {
    return undefined;
  }
}

/**
 * storage.maintenance.readonly.enabled, and with an `etcd` section the key etcd.readonlykey
 * over it: an operator switches a running registry (and every instance of it) read-only with
 * one `etcdctl put`, and back by deleting the key. A value that is not a boolean is ignored.
 */
export async function followReadOnly(config: RegistryConfig, log: Logger): Promise<{ state: ReadOnlyState; watch?: WatchedKey; close(): void }> {
  const state: ReadOnlyState = { enabled: config.storage.readOnly, source: "file" };
  if (!config.etcd) return { state, close: () => undefined };
  const { EtcdKeyWatch } = await import("../etcd/client.js");
  const watch = new EtcdKeyWatch(
    config.etcd,
    config.etcd.readOnlyKey,
    async (text) => {
      const enabled = text === null ? undefined : parseReadOnly(text);
      if (text !== null && enabled === undefined) {
        log.error({ key: config.etcd?.readOnlyKey, value: text.slice(0, 100) }, "read-only key holds neither true nor false; ignored");
        return;
      }
      const next: ReadOnlyState = enabled === undefined ? { enabled: config.storage.readOnly, source: "file" } : { enabled, source: "etcd" };
      if (next.enabled !== state.enabled) log.warn({ key: config.etcd?.readOnlyKey, ...next }, next.enabled ? "read-only mode on" : "read-only mode off");
      Object.assign(state, next);
    },
    (message) => log.warn(message),
  );
  watch.start();
  return { state, watch: { key: config.etcd.readOnlyKey, connected: () => watch.connected }, close: () => watch.close() };
}
