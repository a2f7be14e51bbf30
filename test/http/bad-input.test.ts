import { readdir } from "node:fs/promises";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode } from "../helpers/http.js";
import { OCI_MANIFEST, pushImage, randomImage } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

let registry: TestRegistry;
let base: string;

async function listTree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

/** Sends raw bytes and returns what the server answered before closing. */
function raw(request: string): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.write(request));
    socket.setTimeout(5000, () => socket.destroy());
    const chunks: Buffer[] = [];
    socket.on("data", (c) => chunks.push(c));
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
    socket.on("error", reject);
  });
}

beforeAll(async () => {
  registry = await startTestRegistry();
  base = registry.url;
  await pushImage(base, "safe/repo", "v1", randomImage());
});
afterAll(() => registry.close());

describe("bad input gets its spec error and changes nothing", () => {
  it("path traversal in names never reaches the store", async () => {
    const before = await listTree(registry.root!);
    for (const path of [
      "/v2/../../etc/passwd/manifests/latest",
      "/v2/a/..%2F..%2Fetc/manifests/latest",
      "/v2/safe/repo/../../x/tags/list",
      "/v2/%2e%2e/tags/list",
      "/v2/a%00b/tags/list",
    ]) {
      const reply = await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(reply).toMatch(/^HTTP\/1\.1 (400|404)/);
      expect(reply).not.toMatch(/^HTTP\/1\.1 500/);
    }
    const put = await call("PUT", `${base}/v2/a/..%2f..%2fescape/manifests/v1`, { headers: { "content-type": OCI_MANIFEST }, body: "{}" });
    expect(errorCode(put)).toBe("NAME_INVALID");
    expect(await listTree(registry.root!)).toEqual(before);
  });

  it("uppercase names and overlong names are NAME_INVALID", async () => {
    expect(errorCode(await call("GET", `${base}/v2/Upper/tags/list`))).toBe("NAME_INVALID");
    expect(errorCode(await call("GET", `${base}/v2/${"a".repeat(256)}/tags/list`))).toBe("NAME_INVALID");
  });

  it("an unknown route is 404 and a wrong method 405 with Allow", async () => {
    expect((await call("GET", `${base}/v3/`)).status).toBe(404);
    const reply = await call("POST", `${base}/v2/safe/repo/tags/list`);
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe("GET");
  });

  it("oversized headers get 431 and the server keeps serving", async () => {
    const reply = await raw(`GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 431/);
    expect((await call("GET", `${base}/v2/`)).status).toBe(200);
  });

  it("garbage instead of HTTP gets 400 and the server keeps serving", async () => {
    const reply = await raw("\x16\x03\x01 not http at all\r\n\r\n");
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await call("GET", `${base}/v2/`)).status).toBe(200);
  });

  it("a client that sends a manifest shorter than its Content-Length and leaves stores nothing", async () => {
    const image = randomImage();
    const url = new URL(base);
    await new Promise<void>((resolve) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.write(
          `PUT /v2/safe/repo/manifests/short HTTP/1.1\r\nHost: x\r\nContent-Type: ${OCI_MANIFEST}\r\nContent-Length: 1000\r\n\r\n${image.manifest.content.toString().slice(0, 50)}`,
        );
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 100);
      });
    });
    expect((await call("GET", `${base}/v2/safe/repo/manifests/short`)).status).toBe(404);
    expect((await call("GET", `${base}/v2/`)).status).toBe(200);
  });

  it("every error body is the spec's JSON", async () => {
    const reply = await call("GET", `${base}/v2/safe/repo/manifests/missing`);
    expect(reply.headers["content-type"]).toContain("application/json");
    expect(reply.json()).toEqual({ errors: [{ code: "MANIFEST_UNKNOWN", message: expect.any(String), detail: { reference: "missing" } }] });
  });

  it("the base endpoint answers with the API version header", async () => {
    const reply = await call("GET", `${base}/v2/`);
    expect(reply.status).toBe(200);
    expect(reply.headers["docker-distribution-api-version"]).toBe("registry/2.0");
  });
});

describe("GET /health", () => {
  it("answers without authentication and reports the store, draining, read-only mode and the auth mode", async () => {
    const reply = await call("GET", `${base}/health`);
    expect(reply.status).toBe(200);
    expect(reply.json()).toEqual({
      status: "ok",
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      draining: false,
      // A store on local disk says how much room its volume has left.
      storage: { reachable: true, freeBytes: expect.any(Number), totalBytes: expect.any(Number) },
      readonly: { enabled: false, source: "file" },
      auth: { mode: "none", source: "file" },
    });
  });
});
