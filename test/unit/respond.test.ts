import { once } from "node:events";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { streamBody } from "../../src/http/respond.js";
import type { RecyclingReadable } from "../../src/storage/driver.js";

/** A recycling reader that pushes a 64 KiB chunk every `everyMs`, for `chunks` chunks. */
function slowRecycling(chunks: number, everyMs: number): RecyclingReadable {
  let sent = 0;
  const stream = new Readable({
    read() {
      if (sent === chunks) return void this.push(null);
      setTimeout(() => this.push(Buffer.alloc(64 * 1024, sent++)), everyMs);
    },
  }) as RecyclingReadable;
  stream.release = () => undefined;
  return stream;
}

describe("streamBody", () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server?.closeAllConnections();
  });

  it("destroys a recycling source whose client went away between two of its chunks", async () => {
    const source = slowRecycling(1000, 20);
    const settled = new Promise<unknown>((resolve) => {
      server = createServer((_req, res) => {
        res.setHeader("Content-Length", 1000 * 64 * 1024);
        streamBody(source, res).then(resolve, resolve);
      });
    });
    server!.listen(0, "127.0.0.1");
    await once(server!, "listening");
    const { port } = server!.address() as AddressInfo;
    const req = request({ host: "127.0.0.1", port, path: "/" });
    req.end();
    const [res] = (await once(req, "response")) as [NodeJS.ReadableStream];
    await once(res, "data");
    req.destroy();
    // The client is gone while the source has not produced its next chunk yet.
    const outcome = await Promise.race([settled, new Promise((r) => setTimeout(() => r("still streaming"), 5000))]);
    expect(outcome).not.toBe("still streaming");
    expect(source.destroyed).toBe(true);
  });
});
