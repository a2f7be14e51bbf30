import { http } from "../builtins.js";
import type { Logger } from "pino";
import type { Metrics } from "../metrics/metrics.js";
import { sendMetrics } from "./metrics-endpoint.js";
import { listen, type RunningServer } from "./listen.js";

/**
 * http.debug.addr: a listener for operators only (bind it to a private address), as in
 * distribution. It serves the metrics at http.debug.prometheus.path and nothing else.
 */
export async function startDebugServer(addr: string, metricsPath: string | undefined, metrics: Metrics, log: Logger): Promise<RunningServer> {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://debug.invalid").pathname;
    if (metricsPath !== undefined && path === metricsPath) sendMetrics(metrics, req, res);
    else res.writeHead(404, { "Content-Type": "text/plain" }).end(metricsPath ? `metrics are at ${metricsPath}\n` : "http.debug.prometheus is not enabled\n");
  });
  return listen(server, addr, "http", { key: "http.debug.addr", log });
}
