import { createServer, type IncomingMessage, type Server } from "node:http";
import { freePort } from "./process.js";

export interface Delivery {
  path: string;
  headers: IncomingMessage["headers"];
  events: Array<Record<string, unknown> & { id: string; action: string; target: Record<string, unknown> }>;
}

/** A real HTTP listener for notifications: /events fails its first `failures` POSTs, /hang never answers. */
export async function startReceiver(failures: number): Promise<{ url: string; deliveries: Delivery[]; refused: () => number; server: Server }> {
  const deliveries: Delivery[] = [];
  let refused = 0;
  const server = createServer((req, res) => {
    if (req.url === "/hang") return; // never answers; the registry's timeout ends it
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.url === "/events" && refused < failures) {
        refused++;
        res.writeHead(500).end("not yet");
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { events: Delivery["events"] };
      deliveries.push({ path: req.url ?? "", headers: req.headers, events: body.events });
      res.writeHead(200).end();
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${port}`, deliveries, refused: () => refused, server };
}
