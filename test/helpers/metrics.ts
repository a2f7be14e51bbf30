import { call } from "./http.js";

/** YAML under `http:` that serves the metrics on the main port at /metrics. */
export const METRICS_ON_MAIN_PORT = "  debug:\n    prometheus:\n      enabled: true\n      path: /metrics";

/** One sample of a Prometheus exposition, by name and labels (every given label must match; 0 when absent). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return 0;
}

/** A registry's metrics now, as a function of sample name and labels. */
export async function scrape(url: string): Promise<(name: string, labels?: Record<string, string>) => number> {
  const reply = await call("GET", url);
  if (reply.status !== 200) throw new Error(`${url} answered ${reply.status}`);
  const text = reply.body.toString("utf8");
  return (name, labels) => sample(text, name, labels);
}

/** Calls to the storage driver's stat so far (registry_storage_action_seconds_count). */
export async function storeStats(url: string): Promise<number> {
  return (await scrape(`${url}/metrics`))("registry_storage_action_seconds_count", { action: "Stat" });
}

/**
 * Waits (bounded) until a registry with the descriptor cache answers HEADs of these blobs from
 * the cache alone (its metrics on the main port show no store stat), and fails if it never does.
 */
export async function untilCacheVouches(url: string, repository: string, digests: string[]): Promise<void> {
  const heads = () => Promise.all(digests.map((digest) => call("HEAD", `${url}/v2/${repository}/blobs/${digest}`)));
  for (let i = 0; i < 60; i++) {
    await heads();
    const before = await storeStats(url);
    const replies = await heads();
    if (replies.every((r) => r.status === 200) && (await storeStats(url)) === before) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${url} never answered from its descriptor cache`);
}
