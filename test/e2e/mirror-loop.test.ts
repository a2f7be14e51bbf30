import { type ChildProcess } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode } from "../helpers/http.js";
import { sha256 } from "../helpers/oci.js";
import { startNginx, writeNginxConfig } from "../helpers/nginx.js";
import { freePort } from "../helpers/process.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";

/** What a client meets when the mirror's peer is the mirror itself: a clear 503, not a hang. */
async function expectLoopRefused(url: string): Promise<void> {
  const missing = `${url}/v2/lain/app/manifests/v1`;
  const reply = await call("GET", missing);
  expect(reply.status).toBe(503);
  expect(errorCode(reply)).toBe("UNAVAILABLE");
  expect(reply.text).toContain("mirror loop");
  const blob = await call("GET", `${url}/v2/lain/app/blobs/${sha256("anything")}`);
  expect(blob.status).toBe(503);
  expect(blob.text).toContain("mirror loop");
}

describe("a mirror whose proxy.remoteurl leads back to itself", () => {
  it("directly: it refuses its own request at once and names the loop", async () => {
    const port = await freePort();
    const mirror = await startTestRegistry({
      extraYaml: `proxy:\n  remoteurl: http://127.0.0.1:${port}\n  timeouts: {connect: 2s, response: 30s, idle: 30s}`,
      addr: `127.0.0.1:${port}`,
    });
    try {
      await expectLoopRefused(mirror.url);
    } finally {
      await mirror.close();
    }
  });
});

describe.skipIf(!hasTool("nginx"))("a standby mirror pointed at the load balancer that lists it", () => {
  let work: string;
  let nginx: ChildProcess;
  let mirror: TestRegistry;
  let front: string;

  beforeAll(async () => {
    work = await tempDir("lain-loop-");
    const port = await freePort();
    front = `127.0.0.1:${await freePort()}`;
    const upstreams = join(work, "registry.upstreams");
    // The primaries are down: nginx has only the standby (a backup server) left.
    await writeFile(upstreams, `upstream registry {\n  server 127.0.0.1:${port};\n}\n`);
    nginx = startNginx(await writeNginxConfig(work, front, upstreams));
    mirror = await startTestRegistry({
      extraYaml: `proxy:\n  remoteurl: http://${front}\n  timeouts: {connect: 2s, response: 30s, idle: 30s}`,
      addr: `127.0.0.1:${port}`,
    });
    for (let i = 0; i < 100 && (await call("GET", `http://${front}/v2/`).catch(() => undefined))?.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  afterAll(async () => {
    nginx?.kill("SIGTERM");
    await mirror?.close();
    await rm(work, { recursive: true, force: true });
  });

  it("meets its own request through nginx, refuses it at once, and its client gets a clear 503", async () => {
    await expectLoopRefused(mirror.url);
    // Through nginx too: the client of the webrouter gets the same clear answer.
    const reply = await call("GET", `http://${front}/v2/lain/app/manifests/v1`);
    expect(reply.status).toBe(503);
    expect(reply.text).toContain("mirror loop");
  });
});
