import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode, resolveLocation } from "../helpers/http.js";
import { sha256, startUpload } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

let registry: TestRegistry;
let base: string;
let counter = 0;
const repo = () => `uploads/r${++counter}`;

beforeAll(async () => {
  registry = await startTestRegistry();
  base = registry.url;
});
afterAll(() => registry.close());

async function blobExists(name: string, digest: string): Promise<boolean> {
  return (await call("HEAD", `${base}/v2/${name}/blobs/${digest}`)).status === 200;
}

describe("POST /v2/<name>/blobs/uploads/", () => {
  it("opens a session: 202 with Location, Range 0-0 and Docker-Upload-UUID", async () => {
    const reply = await call("POST", `${base}/v2/${repo()}/blobs/uploads/`);
    expect(reply.status).toBe(202);
    expect(reply.headers.location).toMatch(/\/blobs\/uploads\/[0-9a-f-]{36}\?_state=/);
    expect(reply.headers.range).toBe("0-0");
    expect(reply.headers["docker-upload-uuid"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("stores a monolithic upload with ?digest= and answers 201 with the blob's Location", async () => {
    const name = repo();
    const data = randomBytes(10_000);
    const reply = await call("POST", `${base}/v2/${name}/blobs/uploads/?digest=${sha256(data)}`, { body: data });
    expect(reply.status).toBe(201);
    expect(reply.headers["docker-content-digest"]).toBe(sha256(data));
    expect(reply.headers.location).toMatch(new RegExp(`/v2/${name}/blobs/${sha256(data)}$`));
    const got = await call("GET", `${base}/v2/${name}/blobs/${sha256(data)}`);
    expect(got.body.equals(data)).toBe(true);
  });

  it("refuses a monolithic upload whose digest does not match, storing nothing", async () => {
    const name = repo();
    const data = randomBytes(1000);
    const wrong = sha256("something else");
    const reply = await call("POST", `${base}/v2/${name}/blobs/uploads/?digest=${wrong}`, { body: data });
    expect(reply.status).toBe(400);
    expect(errorCode(reply)).toBe("DIGEST_INVALID");
    expect(await blobExists(name, wrong)).toBe(false);
    expect(await blobExists(name, sha256(data))).toBe(false);
  });

  it("mounts a blob from another repository with ?mount=&from=", async () => {
    const from = repo();
    const to = repo();
    const data = randomBytes(2000);
    await call("POST", `${base}/v2/${from}/blobs/uploads/?digest=${sha256(data)}`, { body: data });
    const reply = await call("POST", `${base}/v2/${to}/blobs/uploads/?mount=${sha256(data)}&from=${from}`);
    expect(reply.status).toBe(201);
    expect(reply.headers["docker-content-digest"]).toBe(sha256(data));
    expect((await call("GET", `${base}/v2/${to}/blobs/${sha256(data)}`)).body.equals(data)).toBe(true);
  });

  it("falls back to a session when the blob is not mountable", async () => {
    const reply = await call("POST", `${base}/v2/${repo()}/blobs/uploads/?mount=${sha256("absent")}&from=${repo()}`);
    expect(reply.status).toBe(202);
    expect(reply.headers.location).toContain("/blobs/uploads/");
  });

  it("refuses a malformed mount digest or from name", async () => {
    const bad = await call("POST", `${base}/v2/${repo()}/blobs/uploads/?mount=sha256:nothex&from=x`);
    expect(errorCode(bad)).toBe("DIGEST_INVALID");
    const badFrom = await call("POST", `${base}/v2/${repo()}/blobs/uploads/?mount=${sha256("x")}&from=../etc`);
    expect(errorCode(badFrom)).toBe("NAME_INVALID");
  });
});

describe("PATCH and PUT /v2/<name>/blobs/uploads/<id>", () => {
  it("takes ordered chunks with Content-Range, then PUT ?digest= completes", async () => {
    const name = repo();
    const data = randomBytes(300_000);
    let location = await startUpload(base, name);
    for (let offset = 0; offset < data.length; offset += 100_000) {
      const chunk = data.subarray(offset, offset + 100_000);
      const reply = await call("PATCH", location, {
        headers: { "content-range": `${offset}-${offset + chunk.length - 1}`, "content-type": "application/octet-stream" },
        body: chunk,
      });
      expect(reply.status).toBe(202);
      expect(reply.headers.range).toBe(`0-${offset + chunk.length - 1}`);
      location = resolveLocation(base, reply.headers.location);
    }
    const status = await call("GET", location);
    expect(status.status).toBe(204);
    expect(status.headers.range).toBe(`0-${data.length - 1}`);
    const done = await call("PUT", `${location}&digest=${sha256(data)}`);
    expect(done.status).toBe(201);
    expect((await call("GET", `${base}/v2/${name}/blobs/${sha256(data)}`)).body.equals(data)).toBe(true);
    expect((await call("GET", location)).status).toBe(404);
  });

  it("answers 416 to a chunk that does not start where the upload ends, keeping what it has", async () => {
    const name = repo();
    const location = await startUpload(base, name);
    await call("PATCH", location, { headers: { "content-range": "0-9" }, body: Buffer.alloc(10, 1) });
    const reply = await call("PATCH", location, { headers: { "content-range": "20-29" }, body: Buffer.alloc(10, 2) });
    expect(reply.status).toBe(416);
    expect(errorCode(reply)).toBe("BLOB_UPLOAD_INVALID");
    expect((await call("GET", location)).headers.range).toBe("0-9");
  });

  it("refuses a Content-Range that disagrees with Content-Length", async () => {
    const location = await startUpload(base, repo());
    const reply = await call("PATCH", location, { headers: { "content-range": "0-99" }, body: Buffer.alloc(10) });
    expect(reply.status).toBe(400);
    expect(errorCode(reply)).toBe("SIZE_INVALID");
  });

  it("streams a PATCH without Content-Range and completes with a final body on PUT", async () => {
    const name = repo();
    const first = randomBytes(70_000);
    const last = randomBytes(5_000);
    const location = await startUpload(base, name);
    async function* chunks() {
      for (let i = 0; i < first.length; i += 7000) yield first.subarray(i, i + 7000);
    }
    const patched = await call("PATCH", location, { body: Readable.from(chunks()) });
    expect(patched.status).toBe(202);
    const all = Buffer.concat([first, last]);
    const done = await call("PUT", `${resolveLocation(base, patched.headers.location)}&digest=${sha256(all)}`, { body: last });
    expect(done.status).toBe(201);
    expect((await call("GET", `${base}/v2/${name}/blobs/${sha256(all)}`)).body.equals(all)).toBe(true);
  });

  it("accepts sha512 digests", async () => {
    const { createHash } = await import("node:crypto");
    const name = repo();
    const data = randomBytes(4096);
    const digest = `sha512:${createHash("sha512").update(data).digest("hex")}`;
    const location = await startUpload(base, name);
    const done = await call("PUT", `${location}&digest=${digest}`, { body: data });
    expect(done.status).toBe(201);
    expect((await call("GET", `${base}/v2/${name}/blobs/${digest}`)).body.equals(data)).toBe(true);
  });

  it("PUT with a wrong digest answers DIGEST_INVALID and leaves no blob", async () => {
    const name = repo();
    const location = await startUpload(base, name);
    const data = randomBytes(1000);
    await call("PATCH", location, { body: data });
    const reply = await call("PUT", `${location}&digest=${sha256("other")}`);
    expect(reply.status).toBe(400);
    expect(errorCode(reply)).toBe("DIGEST_INVALID");
    expect(await blobExists(name, sha256(data))).toBe(false);
    expect(await blobExists(name, sha256("other"))).toBe(false);
  });

  it("PUT without ?digest= answers DIGEST_INVALID", async () => {
    const location = await startUpload(base, repo());
    expect(errorCode(await call("PUT", location, { body: Buffer.from("x") }))).toBe("DIGEST_INVALID");
  });

  it("DELETE cancels: 204, then the upload is unknown", async () => {
    const location = await startUpload(base, repo());
    expect((await call("DELETE", location)).status).toBe(204);
    const after = await call("GET", location);
    expect(after.status).toBe(404);
    expect(errorCode(after)).toBe("BLOB_UPLOAD_UNKNOWN");
  });

  it("answers BLOB_UPLOAD_UNKNOWN for unknown or malformed ids and in another repository", async () => {
    const name = repo();
    const location = await startUpload(base, name);
    const id = new URL(location).pathname.split("/").pop();
    expect(errorCode(await call("GET", `${base}/v2/${name}/blobs/uploads/6f1c3e0e-2d7a-4d59-9b1b-0d5b6b7f1a11`))).toBe("BLOB_UPLOAD_UNKNOWN");
    expect(errorCode(await call("PATCH", `${base}/v2/${name}/blobs/uploads/..%2F..%2Fetc`, { body: "x" }))).toBe("BLOB_UPLOAD_UNKNOWN");
    expect(errorCode(await call("GET", `${base}/v2/${repo()}/blobs/uploads/${id}`))).toBe("BLOB_UPLOAD_UNKNOWN");
  });

  it("refuses a forged _state", async () => {
    const location = await startUpload(base, repo());
    const forged = location.replace(/_state=[^&]+/, "_state=AAAA");
    const reply = await call("GET", forged);
    expect(reply.status).toBe(400);
    expect(errorCode(reply)).toBe("BLOB_UPLOAD_INVALID");
  });

  it("a client that disconnects mid-PATCH leaves no blob, and the upload can resume from what arrived", async () => {
    const name = repo();
    const data = randomBytes(2 * 1024 * 1024);
    const location = await startUpload(base, name);
    const { request } = await import("node:http");
    await new Promise<void>((resolve) => {
      const url = new URL(location);
      const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: "PATCH" });
      req.on("error", () => resolve());
      req.write(data.subarray(0, 1024 * 1024), () => {
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 100);
      });
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(await blobExists(name, sha256(data))).toBe(false);
    const status = await call("GET", location);
    expect(status.status).toBe(204);
    const received = Number(status.headers.range?.split("-")[1]) + 1;
    expect(received).toBeLessThanOrEqual(1024 * 1024);
    const done = await call("PUT", `${location}&digest=${sha256(data)}`, { body: data.subarray(received) });
    expect(done.status).toBe(201);
    expect((await call("GET", `${base}/v2/${name}/blobs/${sha256(data)}`)).body.equals(data)).toBe(true);
  });
});
