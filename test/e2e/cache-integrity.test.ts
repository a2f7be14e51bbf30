import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { StorageDriver } from "../../src/storage/driver.js";
import { s3Driver } from "../../src/storage/factory.js";
import { FilesystemDriver } from "../../src/storage/filesystem.js";
import { call } from "../helpers/http.js";
import { scrape, untilCacheVouches } from "../helpers/metrics.js";
import { randomImage, writeOciLayout, type Image } from "../helpers/oci.js";
import { freePort, runCli, startLainProcess, type ServerProcess } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { createBucket, s3StorageYaml, s3TestOptions } from "../helpers/s3.js";
import { skopeo } from "../helpers/skopeo.js";
import { afterStoreTick, storedBlobs } from "../helpers/store.js";
import { hasTool } from "../helpers/tools.js";

const server = inject("s3");
const available = hasTool("skopeo");

const blobsOf = (image: Image) => [image.config, ...image.layers];

/**
 * Two instances on one store, both with the LAIN README's `cache: layerinfo: inmemory`: the
 * setting under which distribution acknowledges a push whose layers a collector had removed
 * (distribution#4569). Here every acknowledged push pulls back from both.
 */
function suite(kind: "filesystem" | "s3") {
  let work: string;
  let root: string | undefined;
  let driver: StorageDriver;
  let config: string;
  let a: ServerProcess;
  let b: ServerProcess;

  beforeAll(async () => {
    work = await tempDir(`lain-cache-${kind}-`);
    root = kind === "filesystem" ? join(work, "store") : undefined;
    const bucket = kind === "s3" ? await createBucket(server!) : undefined;
    driver = root ? new FilesystemDriver(root) : await s3Driver(s3TestOptions(server!, bucket!));
    const storage = root ? `  filesystem: {rootdirectory: ${root}}` : s3StorageYaml(server!, bucket!);
    config = join(work, "config.yml");
    await writeFile(
      config,
      [
        "version: 0.1",
        "log: {level: warn}",
        "storage:",
        storage,
        "  delete: {enabled: true}",
        "  cache: {layerinfo: inmemory}",
        "http:",
        "  secret: shared-by-both",
        "  debug: {prometheus: {enabled: true, path: /metrics}}",
      ].join("\n"),
    );
    a = await startLainProcess(config, await freePort());
    b = await startLainProcess(config, await freePort());
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await rm(work, { recursive: true, force: true });
  });

  async function push(image: Image, name: string, to: ServerProcess, reference: string): Promise<void> {
    const dir = join(work, `${name}-${Math.random().toString(36).slice(2)}`);
    await writeOciLayout(dir, [{ tag: "v1", manifest: image.manifest }], [image.manifest, ...blobsOf(image)]);
    await skopeo("copy", `oci:${dir}:v1`, `docker://${to.host}/${reference}`);
  }

  async function expectPulls(image: Image, from: ServerProcess, reference: string): Promise<void> {
    const out = join(work, `out-${Math.random().toString(36).slice(2)}`);
    await skopeo("copy", `docker://${from.host}/${reference}`, `oci:${out}:v1`);
    for (const item of [image.manifest, ...blobsOf(image)]) {
      expect((await readFile(join(out, "blobs", "sha256", item.digest.slice(7)))).equals(item.content)).toBe(true);
    }
  }

  const expectVouching = (instance: ServerProcess, repository: string, image: Image) =>
    untilCacheVouches(instance.url, repository, blobsOf(image).map((b) => b.digest));

  it("a push, a delete and garbage-collect in another process, then the same push again: it pulls back from both instances", async () => {
    const image = randomImage({ layers: 2, layerSize: 50_000 });
    await push(image, "first", a, "lain/app:v1");
    await expectPulls(image, b, "lain/app:v1");
    // The setting of the bug: the other instance's cache vouches for every layer.
    await expectVouching(b, "lain/app", image);

    await skopeo("delete", `docker://${a.host}/lain/app:v1`);
    // The cache's HEADs renewed the links a moment ago: with no delay they are old once the store's clock moves on.
    await afterStoreTick(driver);
    const gc = await runCli("garbage-collect", config, "--delay", "0s");
    expect(gc.code).toBe(0);
    for (const blob of blobsOf(image)) expect(gc.stdout).toContain(`deleted blob ${blob.digest}`);
    if (root) for (const blob of blobsOf(image)) expect(await storedBlobs(root)).not.toContain(blob.digest);

    // At once, to the instance whose cache vouched: it must ask for every layer again.
    await push(image, "again", b, "lain/app:v1");
    await expectPulls(image, b, "lain/app:v1");
    await expectPulls(image, a, "lain/app:v1");
  });

  it("a blob DELETE on one instance: the other's cache stops vouching before the DELETE is answered", async () => {
    const image = randomImage({ layers: 1, layerSize: 20_000 });
    await push(image, "deleted", a, "lain/del:v1");
    await expectVouching(b, "lain/del", image);
    const layer = image.layers[0]!;
    expect((await call("DELETE", `${a.url}/v2/lain/del/blobs/${layer.digest}`)).status).toBe(202);
    expect((await call("HEAD", `${b.url}/v2/lain/del/blobs/${layer.digest}`)).status).toBe(404);
    expect((await call("GET", `${b.url}/v2/lain/del/blobs/${layer.digest}`)).status).toBe(404);
    await push(image, "relinked", b, "lain/del:v2");
    await expectPulls(image, a, "lain/del:v2");
  });
}

describe.skipIf(!available)("with the descriptor cache, on the filesystem: an acknowledged push always pulls back", () => suite("filesystem"));
describe.skipIf(!available || server === null)("with the descriptor cache, on S3 (Ceph RGW): an acknowledged push always pulls back", () => suite("s3"));

describe.skipIf(!available)("with the descriptor cache and storage.gc inside the server", () => {
  it("a collection on one instance: a push to the other right after pulls back from both", async () => {
    const work = await tempDir("lain-cache-gc-");
    const root = join(work, "store");
    const base = ["version: 0.1", "log: {level: warn}", "storage:", `  filesystem: {rootdirectory: ${root}}`, "  delete: {enabled: true}", "  cache: {blobdescriptor: inmemory}"];
    const http = ["http:", "  secret: shared", "  debug: {prometheus: {enabled: true, path: /metrics}}"];
    const collecting = join(work, "collecting.yml");
    const plain = join(work, "plain.yml");
    // The delay keeps the new push's blobs (younger) and lets the deleted image's go (older: B's cache had to settle first).
    await writeFile(collecting, [...base, "  gc: {enabled: true, interval: 1s, delay: 5s}", ...http].join("\n"));
    await writeFile(plain, [...base, ...http].join("\n"));
    const a = await startLainProcess(collecting, await freePort());
    const b = await startLainProcess(plain, await freePort());
    try {
      const image = randomImage({ layers: 2, layerSize: 30_000 });
      const dir = join(work, "src");
      await writeOciLayout(dir, [{ tag: "v1", manifest: image.manifest }], [image.manifest, ...blobsOf(image)]);
      await skopeo("copy", `oci:${dir}:v1`, `docker://${a.host}/lain/gc:v1`);
      await untilCacheVouches(b.url, "lain/gc", blobsOf(image).map((blob) => blob.digest));
      await skopeo("delete", `docker://${a.host}/lain/gc:v1`);
      // The collection that removed the image's manifest, config and layers has finished.
      const deleted = async () => (await scrape(`${a.url}/metrics`))("registry_gc_deleted_blobs_total");
      await expect.poll(deleted, { timeout: 30_000, interval: 100 }).toBeGreaterThanOrEqual(4);
      for (const item of [image.manifest, ...blobsOf(image)]) expect(await storedBlobs(root)).not.toContain(item.digest);
      await skopeo("copy", `oci:${dir}:v1`, `docker://${b.host}/lain/gc:v1`);
      for (const from of [a, b]) {
        const out = join(work, `out-${from.host.replace(/\W/g, "")}`);
        await skopeo("copy", `docker://${from.host}/lain/gc:v1`, `oci:${out}:v1`);
        for (const item of [image.manifest, ...blobsOf(image)]) {
          expect((await readFile(join(out, "blobs", "sha256", item.digest.slice(7)))).equals(item.content)).toBe(true);
        }
      }
    } finally {
      await a.stop();
      await b.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
});
