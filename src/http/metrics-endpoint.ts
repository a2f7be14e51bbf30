import type { IncomingMessage, ServerResponse } from "node:http";
import type { Metrics } from "../metrics/metrics.js";

/** GET/HEAD of the Prometheus exposition, on the debug server or the main port. */
export function sendMetrics(metrics: Metrics, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { Allow: "GET, HEAD" }).end();
    return;
  }
  metrics.text().then(
    (text) => {
      res.writeHead(200, { "Content-Type": metrics.contentType, "Content-Length": Buffer.byteLength(text) });
      res.end(req.method === "HEAD" ? undefined : text);
    },
    (err: unknown) => res.writeHead(500, { "Content-Type": "text/plain" }).end(`metrics unavailable: ${String(err)}\n`),
  );
}
