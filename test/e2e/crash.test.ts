import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, resolveLocation } from "../helpers/http.js";
import { randomImage, sha256 } from "../helpers/oci.js";
import { freePort, startLainProcess, type ServerProcess } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";

describe("durability: kill -9 and restarts", () => {
  let work: string;
  let config: string;
  let port: number;

  beforeAll(async () => {
    work = await tempDir("lain-crash-");
    config = join(work, "config.yml");
    port = await freePort();
    await writeFile(
      config,
      `version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: ${join(work, "store")}}\nhttp:\n  secret: crash-test\n`,
    );
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const start = (): Promise<ServerProcess> => startLainProcess(config, port);

  it("an acknowledged push survives a kill -9 the instant after the response", async () => {
    const image = randomImage({ layers: 2, layerSize: 1024 * 1024 });
    let server = await start();
    for (const item of [image.config, ...image.layers]) {
      const reply = await call("POST", `${server.url}/v2/crash/app/blobs/uploads/?digest=${item.digest}`, { body: item.content });
      expect(reply.status).toBe(201);
    }
    const put = await call("PUT", `${server.url}/v2/crash/app/manifests/v1`, {
      headers: { "content-type": image.manifest.mediaType },
      body: image.manifest.content,
    });
    expect(put.status).toBe(201);
    server.child.kill("SIGKILL");
    await server.stop("SIGKILL");

    server = await start();
    try {
      const manifest = await call("GET", `${server.url}/v2/crash/app/manifests/v1`);
      expect(manifest.body.equals(image.manifest.content)).toBe(true);
      for (const item of [image.config, ...image.layers]) {
        const blob = await call("GET", `${server.url}/v2/crash/app/blobs/${item.digest}`);
        expect(sha256(blob.body)).toBe(item.digest);
      }
    } finally {
      await server.stop();
    }
  });

  it("a half-done upload continues after the registry is killed and restarted", async () => {
    const data = randomBytes(3 * 1024 * 1024);
    let server = await start();
    const begin = await call("POST", `${server.url}/v2/crash/upload/blobs/uploads/`);
    const first = resolveLocation(server.url, begin.headers.location);
    const patched = await call("PATCH", first, { headers: { "content-range": `0-${2 * 1024 * 1024 - 1}` }, body: data.subarray(0, 2 * 1024 * 1024) });
    expect(patched.status).toBe(202);
    const location = resolveLocation(server.url, patched.headers.location);
    await server.stop("SIGKILL");

    server = await start();
    try {
      const status = await call("GET", location);
      expect(status.status).toBe(204);
      expect(status.headers.range).toBe(`0-${2 * 1024 * 1024 - 1}`);
      const done = await call("PUT", `${location}&digest=${sha256(data)}`, { body: data.subarray(2 * 1024 * 1024) });
      expect(done.status).toBe(201);
      expect((await call("GET", `${server.url}/v2/crash/upload/blobs/${sha256(data)}`)).body.equals(data)).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it("a kill -9 in the middle of a push leaves no partial blob visible", async () => {
    const data = randomBytes(8 * 1024 * 1024);
    let server = await start();
    const { request } = await import("node:http");
    await new Promise<void>((resolve) => {
      const req = request(`${server.url}/v2/crash/partial/blobs/uploads/?digest=${sha256(data)}`, { method: "POST" });
      req.on("error", () => resolve());
      req.write(data.subarray(0, 4 * 1024 * 1024), () => {
        server.child.kill("SIGKILL");
        setTimeout(resolve, 200);
      });
    });
    await server.stop("SIGKILL");
    server = await start();
    try {
      expect((await call("HEAD", `${server.url}/v2/crash/partial/blobs/${sha256(data)}`)).status).toBe(404);
    } finally {
      await server.stop();
    }
  });
});
