import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { dump, PeerClient } from "../../src/proxy/peer-client.js";

const servers: Server[] = [];

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const client = (overrides: Partial<ConstructorParameters<typeof PeerClient>[0]> = {}) =>
  new PeerClient({ maxConnections: 4, connectMs: 1000, headersMs: 1000, idleMs: 1000, ...overrides });

async function text(body: AsyncIterable<unknown>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

describe("the mirror's HTTP client for its peers", () => {
  it("follows a redirect to another origin (a presigned store URL) without the peer's Authorization, and keeps it within the origin", async () => {
    const seen: Array<string | undefined> = [];
    const store = await serve((req, res) => {
      seen.push(req.headers.authorization);
      res.end("bytes from the store");
    });
    const peer = await serve((req, res) => {
      seen.push(req.headers.authorization);
      if (req.url === "/moved") res.writeHead(307, { location: "/blob" }).end();
      else res.writeHead(307, { location: `${store}/presigned?sig=1` }).end();
    });
    const peers = client();
    try {
      const res = await peers.request(peer, "/moved", "GET", { authorization: "Bearer token" });
      expect(res.statusCode).toBe(200);
      expect(await text(res.body)).toBe("bytes from the store");
      // /moved and /blob at the peer, with the token; the store, without it.
      expect(seen).toEqual(["Bearer token", "Bearer token", undefined]);
    } finally {
      peers.close();
    }
  });

  it("waits through 102 Processing past its headers timeout, and gives up on a peer that sends nothing", async () => {
    const peer = await serve((req, res) => {
      if (req.url === "/silent") return;
      const beat = setInterval(() => res.writeProcessing(), 50);
      setTimeout(() => {
        clearInterval(beat);
        res.end("at last");
      }, 600);
    });
    const peers = client({ headersMs: 200 });
    try {
      const res = await peers.request(peer, "/beating", "GET", {});
      expect(await text(res.body)).toBe("at last");
      await expect(peers.request(peer, "/silent", "GET", {})).rejects.toThrow("no response headers within 200 ms");
    } finally {
      peers.close();
    }
  });

  it("breaks off a body that stalls longer than its idle timeout, for its reader to see", async () => {
    const peer = await serve((_req, res) => {
      res.writeHead(200, { "content-length": 100 });
      res.write("a first part");
    });
    const peers = client({ idleMs: 200 });
    try {
      const res = await peers.request(peer, "/stalls", "GET", {});
      await expect(text(res.body)).rejects.toThrow("the body stalled for 200 ms");
    } finally {
      peers.close();
    }
  });

  it("reuses its connections: bodies read or dumped leave them for the next request", async () => {
    const sockets = new Set<unknown>();
    const peer = await serve((req, res) => {
      sockets.add(req.socket);
      res.end("small");
    });
    const peers = client({ maxConnections: 1 });
    try {
      for (let i = 0; i < 5; i++) {
        const res = await peers.request(peer, `/r${i}`, "GET", {});
        if (i % 2 === 0) await dump(res.body);
        else expect(await text(res.body)).toBe("small");
      }
      expect(sockets.size).toBe(1);
    } finally {
      peers.close();
    }
  });
});
