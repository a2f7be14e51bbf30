import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDistribution } from "../helpers/distribution.js";
import { call, resolveLocation } from "../helpers/http.js";
import { randomImage, sha256, writeOciLayout, type Image } from "../helpers/oci.js";
import type { ServerProcess } from "../helpers/process.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { hasTool } from "../helpers/tools.js";

const available = hasTool("skopeo") && hasTool("docker-registry");

describe.skipIf(!available)("interop with distribution on one storage directory", () => {
  let root: string;
  let work: string;
  let lain: TestRegistry;
  let distribution: ServerProcess;

  beforeAll(async () => {
    root = await tempDir("lain-interop-root-");
    work = await tempDir("lain-interop-work-");
    lain = await startTestRegistry({ root });
    distribution = await startDistribution({ root, secret: "test-secret", configDir: work });
  });
  afterAll(async () => {
    await distribution?.stop();
    await lain?.close();
    await rm(root, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  async function layoutOf(name: string, image: Image): Promise<string> {
    const dir = join(work, name);
    await writeOciLayout(dir, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    return dir;
  }

  async function expectPulls(host: string, reference: string, image: Image, name: string): Promise<void> {
    const out = join(work, `${name}-out`);
    await skopeo("copy", `docker://${host}/${reference}`, `oci:${out}:v1`);
    for (const item of [image.manifest, image.config, ...image.layers]) {
      const got = await readFile(join(out, "blobs", "sha256", item.digest.slice(7)));
      expect(got.equals(item.content)).toBe(true);
    }
  }

  it("serves what distribution pushed", async () => {
    const image = randomImage({ layers: 2, layerSize: 100_000 });
    await skopeo("copy", `oci:${await layoutOf("d2l", image)}:v1`, `docker://${distribution.host}/interop/by-distribution:v1`);
    expect(sha256(await skopeo("inspect", "--raw", `docker://${lain.host}/interop/by-distribution:v1`))).toBe(image.manifest.digest);
    await expectPulls(lain.host, "interop/by-distribution:v1", image, "d2l");
  });

  it("distribution serves what lain-registry pushed", async () => {
    const image = randomImage({ layers: 2, layerSize: 100_000 });
    await skopeo("copy", `oci:${await layoutOf("l2d", image)}:v1`, `docker://${lain.host}/interop/by-lain:v1`);
    expect(sha256(await skopeo("inspect", "--raw", `docker://${distribution.host}/interop/by-lain:v1`))).toBe(image.manifest.digest);
    await expectPulls(distribution.host, "interop/by-lain:v1", image, "l2d");
  });

  it("tags and the catalog agree", async () => {
    const image = randomImage({ layers: 1 });
    await skopeo("copy", `oci:${await layoutOf("tags", image)}:v1`, `docker://${lain.host}/interop/tagged:v1`);
    await skopeo("copy", `docker://${lain.host}/interop/tagged:v1`, `docker://${distribution.host}/interop/tagged:v2`);
    const fromLain = (await call("GET", `${lain.url}/v2/interop/tagged/tags/list`)).json();
    const fromDistribution = (await call("GET", `${distribution.url}/v2/interop/tagged/tags/list`)).json();
    expect(fromLain).toEqual({ name: "interop/tagged", tags: ["v1", "v2"] });
    expect(fromDistribution).toEqual(fromLain);
    const catalogLain = (await call("GET", `${lain.url}/v2/_catalog`)).json();
    const catalogDistribution = (await call("GET", `${distribution.url}/v2/_catalog`)).json();
    expect(catalogLain).toEqual(catalogDistribution);
  });

  it("deletions made by either are seen by the other", async () => {
    const a = randomImage({ layers: 1 });
    const b = randomImage({ layers: 1 });
    await skopeo("copy", `oci:${await layoutOf("del-a", a)}:v1`, `docker://${lain.host}/interop/del-a:v1`);
    await skopeo("copy", `oci:${await layoutOf("del-b", b)}:v1`, `docker://${distribution.host}/interop/del-b:v1`);
    expect((await call("DELETE", `${lain.url}/v2/interop/del-a/manifests/${a.manifest.digest}`)).status).toBe(202);
    expect((await call("GET", `${distribution.url}/v2/interop/del-a/manifests/v1`)).status).toBe(404);
    expect((await call("DELETE", `${distribution.url}/v2/interop/del-b/manifests/${b.manifest.digest}`)).status).toBe(202);
    expect((await call("GET", `${lain.url}/v2/interop/del-b/manifests/${b.manifest.digest}`)).status).toBe(404);
    expect((await call("GET", `${lain.url}/v2/interop/del-b/tags/list`)).json()).toEqual({ name: "interop/del-b", tags: [] });
  });

  it("an upload started at one continues at the other (shared http.secret, shared _uploads)", async () => {
    const data = Buffer.alloc(300_000, 7);
    const half = 150_000;
    const start = await call("POST", `${distribution.url}/v2/interop/upload/blobs/uploads/`);
    const first = resolveLocation(distribution.url, start.headers.location);
    const patched = await call("PATCH", first, { headers: { "content-range": `0-${half - 1}` }, body: data.subarray(0, half) });
    expect(patched.status).toBe(202);
    const location = new URL(resolveLocation(distribution.url, patched.headers.location));
    const atLain = `${lain.url}${location.pathname}${location.search}`;
    const done = await call("PUT", `${atLain}&digest=${sha256(data)}`, { body: data.subarray(half) });
    expect(done.status).toBe(201);
    const viaDistribution = await call("GET", `${distribution.url}/v2/interop/upload/blobs/${sha256(data)}`);
    expect(viaDistribution.body.equals(data)).toBe(true);
  });
});
