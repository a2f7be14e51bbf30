import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/http.js";
import { sha256, startUpload } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

let registry: TestRegistry;

beforeAll(async () => {
  registry = await startTestRegistry({ limits: { idleMs: 400, headersMs: 400 } });
});
afterAll(() => registry.close());

/** Opens a socket, sends `data`, and resolves with what the server sent once it closes (bounded). */
function stall(data: string): Promise<{ reply: string }> {
  const url = new URL(registry.url);
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(Number(url.port), url.hostname, () => socket.write(data));
    const chunks: Buffer[] = [];
    const guard = setTimeout(() => socket.destroy(new Error("server never closed the stalled connection")), 10_000);
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => {
      clearTimeout(guard);
      resolve({ reply: Buffer.concat(chunks).toString("latin1") });
    });
  });
}

describe("slow clients", () => {
  it("a client that never finishes its headers is disconnected", async () => {
    const { reply } = await stall("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    expect(reply).not.toMatch(/^HTTP\/1\.1 (200|500)/);
    expect((await call("GET", `${registry.url}/v2/`)).status).toBe(200);
  });

  it("an upload whose body stalls is cut off, leaves no blob, and keeps what arrived", async () => {
    const location = new URL(await startUpload(registry.url, "slow/upload"));
    const body = Buffer.alloc(1000, 9);
    const { reply } = await stall(
      `PATCH ${location.pathname}${location.search} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body.subarray(0, 300).toString("latin1")}`,
    );
    expect(reply).toBe("");
    expect((await call("HEAD", `${registry.url}/v2/slow/upload/blobs/${sha256(body)}`)).status).toBe(404);
    const status = await call("GET", location.toString());
    expect(status.status).toBe(204);
    expect(status.headers.range).toBe("0-299");
  });
});
