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
