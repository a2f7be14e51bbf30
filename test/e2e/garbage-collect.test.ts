import { execFile } from "node:child_process";
import { cp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDistribution } from "../helpers/distribution.js";
import { call } from "../helpers/http.js";
import { pushBlob, pushImage, randomImage, sha256, type Image } from "../helpers/oci.js";
import { runCli } from "../helpers/process.js";
import { startTestRegistry, tempDir } from "../helpers/registry.js";
import { storedBlobs } from "../helpers/store.js";
import { gcPaths } from "../../src/gc/paths.js";
import { METRICS_ON_MAIN_PORT, scrape } from "../helpers/metrics.js";
import { hasTool } from "../helpers/tools.js";

const run = promisify(execFile);
const available = hasTool("docker-registry");

const digestsOf = (image: Image) => [image.manifest.digest, image.config.digest, ...image.layers.map((l) => l.digest)];

describe.skipIf(!available)("garbage-collect removes what distribution's garbage-collect removes", () => {
  let work: string;
  let store: string;
  const images: Record<string, Image> = {};

  beforeAll(async () => {
    work = await tempDir("lain-gc-");
    store = join(work, "store");
    // The store is made by distribution itself.
    const distribution = await startDistribution({ root: store, secret: "gc", configDir: work });
    try {
      const base = randomImage({ layers: 2 });
      images.kept = randomImage({ layers: 2 });
      images.retagged = randomImage({ layers: 1 });
      images.deleted = { ...randomImage({ layers: 1 }) };
      // Shares a layer with the deleted image: that layer must stay.
      images.sharing = randomImage({ layers: 1 });
      images.sharing.layers.push(images.deleted.layers[0]!);
      const manifest = JSON.parse(images.sharing.manifest.content.toString()) as { layers: unknown[] };
      manifest.layers.push({ mediaType: images.deleted.layers[0]!.mediaType, digest: images.deleted.layers[0]!.digest, size: images.deleted.layers[0]!.content.length });
      const content = Buffer.from(JSON.stringify(manifest));
      images.sharing.manifest = { ...images.sharing.manifest, content, digest: sha256(content) };
      images.base = base;

      await pushImage(distribution.url, "lain/app", "v1", images.retagged);
      await pushImage(distribution.url, "lain/app", "v1", images.kept); // v1 moves: "retagged" is untagged now
      await pushImage(distribution.url, "lain/app", "v2", images.deleted);
      await pushImage(distribution.url, "lain/other", "v1", images.sharing);
      await pushImage(distribution.url, "lain/base", "latest", base);
      expect((await call("DELETE", `${distribution.url}/v2/lain/app/manifests/${images.deleted.manifest.digest}`)).status).toBe(202);
      // An upload nobody referenced.
      const orphan = Buffer.from("orphan blob");
      await pushBlob(distribution.url, "lain/app", { mediaType: "application/octet-stream", content: orphan, digest: sha256(orphan) });
    } finally {
      await distribution.stop();
    }
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function both(flags: string[]): Promise<{ distribution: string[]; lain: string[] }> {
    const tag = flags.join("") || "plain";
    const [theirs, ours] = [join(work, `d-${tag}`), join(work, `l-${tag}`)];
    await cp(store, theirs, { recursive: true });
    await cp(store, ours, { recursive: true });
    const config = join(work, `d-${tag}.yml`);
    await writeFile(config, `version: 0.1\nstorage: {filesystem: {rootdirectory: ${theirs}}}\n`);
    const env = { ...process.env };
    delete env.AWS_CA_BUNDLE;
    await run("docker-registry", ["garbage-collect", ...flags, config], { env });
    const lainConfig = join(work, `l-${tag}.yml`);
    await writeFile(lainConfig, `version: 0.1\nstorage: {filesystem: {rootdirectory: ${ours}}}\n`);
    const result = await runCli("garbage-collect", lainConfig, ...flags, "--delay", "0s");
    expect(result.code).toBe(0);
    return { distribution: await storedBlobs(theirs), lain: await storedBlobs(ours) };
  }

  it("without --delete-untagged: the deleted image's own blobs and the orphan go, shared and untagged ones stay", async () => {
    const { distribution, lain } = await both([]);
    expect(lain).toEqual(distribution);
    expect(lain).toEqual(expect.arrayContaining([...digestsOf(images.kept!), ...digestsOf(images.retagged!), images.deleted!.layers[0]!.digest]));
    expect(lain).not.toContain(images.deleted!.config.digest);
    expect(lain).not.toContain(sha256(Buffer.from("orphan blob")));
  });

  it("with --delete-untagged: the untagged manifest and its blobs go too", async () => {
    const { distribution, lain } = await both(["--delete-untagged"]);
    expect(lain).toEqual(distribution);
    expect(lain).not.toContain(images.retagged!.manifest.digest);
    expect(lain).toEqual(expect.arrayContaining(digestsOf(images.kept!)));
  });

  it("--dry-run reports without removing, and the report names what goes", async () => {
    const root = join(work, "dry");
    await cp(store, root, { recursive: true });
    const config = join(work, "dry.yml");
    await writeFile(config, `version: 0.1\nstorage: {filesystem: {rootdirectory: ${root}}}\n`);
    const before = await storedBlobs(root);
    const result = await runCli("garbage-collect", config, "--dry-run", "--delay", "0s");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`would delete blob ${images.deleted!.config.digest}`);
    expect(result.stdout).toMatch(/would free 3 blobs/);
    expect(await storedBlobs(root)).toEqual(before);
  });
});

describe("garbage-collect and the delay", () => {
  it("reports what the delay spared, and a run with nothing old enough to sweep neither tombstones nor announces removals", async () => {
    const root = await tempDir("lain-gc-young-");
    const registry = await startTestRegistry({ root });
    try {
      await pushImage(registry.url, "lain/app", "v1", randomImage({ layers: 1 }));
      for (const text of ["young orphan 1", "young orphan 2", "young orphan 3"]) {
        const orphan = Buffer.from(text);
        await pushBlob(registry.url, "lain/app", { mediaType: "application/octet-stream", content: orphan, digest: sha256(orphan) });
      }
      const config = join(root, "..", `${root.split("/").pop()}.yml`);
      await writeFile(config, `version: 0.1\nstorage: {filesystem: {rootdirectory: ${root}}}\n`);
      const dry = await runCli("garbage-collect", config, "--dry-run", "--delay", "1h");
      expect(dry.code).toBe(0);
      expect(dry.stdout).toContain("would free 0 blobs");
      expect(dry.stdout).toContain("3 unreferenced blobs younger than 1h kept");
      const real = await runCli("garbage-collect", config, "--delay", "1h");
      expect(real.code).toBe(0);
      expect(real.stdout).toContain("freed 0 blobs");
      expect(real.stdout).toContain("3 unreferenced blobs younger than 1h kept");
      // Nothing was announced: no descriptor cache anywhere had to stop vouching, no writer had to look for tombstones.
      await expect(stat(join(root, gcPaths.removalEpoch))).rejects.toMatchObject({ code: "ENOENT" });
      const marks = await readdir(join(root, gcPaths.marksRoot), { recursive: true, withFileTypes: true }).catch(() => []);
      expect(marks.filter((m) => m.isFile()).map((m) => m.name)).toEqual([]);
      await rm(config, { force: true });
    } finally {
      await registry.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("storage.gc: collection inside the server", () => {
  it("collects every interval: an orphan blob goes, an image stays", async () => {
    const root = await tempDir("lain-gc-server-");
    const registry = await startTestRegistry({
      root,
      storageYaml: `  filesystem: {rootdirectory: ${root}}\n  gc: {enabled: true, interval: 1s, delay: 0s}`,
      extraYaml: METRICS_ON_MAIN_PORT,
    });
    try {
      const image = randomImage({ layers: 1 });
      await pushImage(registry.url, "lain/app", "v1", image);
      const orphan = Buffer.from("nobody's blob");
      await pushBlob(registry.url, "lain/app", { mediaType: "application/octet-stream", content: orphan, digest: sha256(orphan) });
      await expect.poll(() => storedBlobs(root), { timeout: 20_000, interval: 500 }).not.toContain(sha256(orphan));
      expect(await storedBlobs(root)).toEqual(expect.arrayContaining(digestsOf(image)));
      const metrics = await scrape(`${registry.url}/metrics`);
      expect(metrics("registry_gc_runs_total", { result: "ok" })).toBeGreaterThanOrEqual(1);
      expect(metrics("registry_gc_runs_total", { result: "error" })).toBe(0);
      expect(metrics("registry_gc_deleted_blobs_total")).toBeGreaterThanOrEqual(1);
      expect(metrics("registry_gc_freed_bytes_total")).toBeGreaterThanOrEqual(orphan.length);
      expect(metrics("registry_gc_last_success_timestamp_seconds")).toBeGreaterThan(Date.now() / 1000 - 60);
    } finally {
      await registry.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
