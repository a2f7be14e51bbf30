import { createServer, type RequestListener, type Server } from "node:http";
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { keepSiblingWaiting, type SiblingHeartbeat } from "../../src/http/sibling-heartbeat.js";
import { Siblings } from "../../src/proxy/siblings.js";
import type { Digest } from "../../src/registry/digest.js";
import type { RepositoryName } from "../../src/registry/names.js";
import { UpstreamError } from "../../src/proxy/upstream.js";

const DIGEST = `sha256:${"ab".repeat(32)}` as Digest;
const NAME = "lain/app" as RepositoryName;
const PROCESSING = "HTTP/1.1 102 Processing\r\n\r\n";

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

async function serve(listener: RequestListener): Promise<string> {
  server = createServer(listener);
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** An owner that answers after `answerAfterMs`, beating meanwhile (or not), and takes a while over its body. */
function owner(answerAfterMs: number, heartbeat: SiblingHeartbeat | undefined): RequestListener {
  return (_req, res) => {
    if (heartbeat) keepSiblingWaiting(res, heartbeat);
    setTimeout(() => {
      res.writeHead(200, { "content-length": "the blob".length, "content-type": "application/octet-stream" }).write("the ");
      setTimeout(() => res.end("blob"), 50);
    }, answerAfterMs);
  };
}

/** The raw bytes of one response, interim ones included. */
async function rawResponse(url: string): Promise<string> {
  const socket = connect(Number(new URL(url).port), "127.0.0.1");
  socket.write("GET /v2/lain/app/blobs/x HTTP/1.1\r\nHost: owner\r\nConnection: close\r\n\r\n");
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("latin1");
}

/** The number of leading 102s, and what follows them. */
function split(raw: string): { beats: number; rest: string } {
  let beats = 0;
  while (raw.startsWith(PROCESSING, beats * PROCESSING.length)) beats++;
  return { beats, rest: raw.slice(beats * PROCESSING.length) };
}

/** The sibling client a mirror of this fleet uses to ask the owner at `url`. */
function siblingClient(url: string): Siblings {
  const loaded = parseConfig(
    [
      "version: 0.1",
      "http: {secret: shared}",
      "etcd: {endpoints: [http://127.0.0.1:2379]}",
      "cluster: {advertise: 'http://127.0.0.1:1'}",
      `proxy: {remoteurl: ${url}, siblings: {enabled: true, firstbytetimeout: 200ms}}`,
    ].join("\n"),
    {},
  );
  if (!loaded.ok || !loaded.config.proxy) throw new Error(JSON.stringify(loaded));
  const siblings = new Siblings("http://127.0.0.1:1", loaded.config.proxy, "shared", () => undefined);
  // The other member always wins: a digest whose owner is the test's server.
  siblings.update([url]);
  return siblings;
}

describe("an owner keeps a sibling that waits for its answer (102 Processing)", () => {
  it("beats at once and until its answer's headers, and never after them", async () => {
    const url = await serve(owner(100, { everyMs: 10, forMs: 10_000 }));
    const { beats, rest } = split(await rawResponse(url));
    // At once, then at 10 ms: a timer due earlier fires first however late the loop runs.
    expect(beats).toBeGreaterThanOrEqual(2);
    expect(rest).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(rest.slice(rest.indexOf("\r\n\r\n") + 4)).toBe("the blob");
  });

  it("stops beating after forMs, so that a wedged owner is passed over after all", async () => {
    const url = await serve(owner(500, { everyMs: 10, forMs: 50 }));
    const { beats, rest } = split(await rawResponse(url));
    // Ticks are at least 10 ms apart: at most 1 + 50 / 10, and a tick's slack; unbounded, about 50.
    expect(beats).toBeGreaterThanOrEqual(1);
    expect(beats).toBeLessThanOrEqual(8);
    expect(rest).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it("an asking mirror waits through the beats past its firstbytetimeout (200 ms) for the owner's answer", async () => {
    const siblings = siblingClient(await serve(owner(2500, { everyMs: 50, forMs: 10_000 })));
    try {
      const found = await siblings.owner(DIGEST)?.client.fetchBlob(NAME, DIGEST);
      if (found?.kind !== "found") throw new Error(`not found: ${JSON.stringify(found)}`);
      const chunks: Buffer[] = [];
      for await (const chunk of found.body) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe("the blob");
    } finally {
      await siblings.close();
    }
  });

  it("an asking mirror passes over an owner that shows nothing within its firstbytetimeout", async () => {
    const siblings = siblingClient(await serve(owner(2500, undefined)));
    try {
      const asked = siblings.owner(DIGEST)?.client.fetchBlob(NAME, DIGEST);
      await expect(asked).rejects.toThrow(UpstreamError);
      await expect(asked).rejects.toThrow(/no response headers within 200 ms/);
    } finally {
      await siblings.close();
    }
  });
});
