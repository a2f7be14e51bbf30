import { rm, truncate, readFile, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { s3Driver } from "../../src/storage/factory.js";
import type { Digest } from "../../src/registry/digest.js";
import { layout } from "../../src/registry/layout.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
import { startDistribution } from "../helpers/distribution.js";
import { call, errorCode } from "../helpers/http.js";
import { pullsWhole, pushImage, randomImage, sha256, type Image } from "../helpers/oci.js";
import { runCli, type ServerProcess } from "../helpers/process.js";
import { startTestRegistry, tempDir } from "../helpers/registry.js";
import { createBucket, s3StorageYaml, s3TestOptions } from "../helpers/s3.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";
import { METRICS_ON_MAIN_PORT, sample } from "../helpers/metrics.js";

/** The problems a scrub printed, as `kind digest` (its lines before the summary). */
function found(stdout: string): string[] {
  return stdout
    .split("\n")
    .map((line) => /^([a-z-]+) (sha256:[0-9a-f]{64})/.exec(line))
    .flatMap((m) => (m ? [`${m[1]} ${m[2]}`] : []))
    .sort();
}

describe.skipIf(!hasTool("docker-registry"))("scrub: a store written by docker-registry, damaged in each way", () => {
  let work: string;
  let root: string;
  let peerRoot: string;
  let config: string;
  let writer: ServerProcess | undefined;
  let peer: ServerProcess | undefined;
  const images: Array<{ repo: string; tag: string; image: Image }> = [];

  beforeAll(async () => {
    work = await tempDir("lain-scrub-");
    root = join(work, "store");
    peerRoot = join(work, "peer");
    writer = await startDistribution({ root, secret: "s", configDir: work });
    peer = await startDistribution({ root: peerRoot, secret: "s", configDir: work });
    for (const [repo, tag] of [["lain/app", "v1"], ["lain/app", "v2"], ["lain/web", "latest"], ["lain/db", "v1"]] as const) {
      const image = randomImage({ layers: 2, layerSize: 100_000 });
      for (const server of [writer, peer]) await pushImage(server.url, repo, tag, image);
      images.push({ repo, tag, image });
    }
    await writer.stop();
    writer = undefined;
    config = join(work, "config.yml");
    await writeFile(config, `version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: ${root}}, delete: {enabled: true}}\nhttp: {secret: s}\n`);
  }, 60_000);
  afterAll(async () => {
    await writer?.stop();
    await peer?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const data = (digest: string) => join(root, layout.blobData(digest as Digest));

  it("finds each damage and only those, quarantines what is corrupt (404 from then on), and --repair puts it back from a peer", async () => {
    const clean = await runCli("scrub", config, "--dry-run");
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(found(clean.stdout)).toEqual([]);
    expect(clean.stdout).toContain("0 problem(s)");

    const [app1, app2, web, db] = images.map((i) => i.image) as [Image, Image, Image, Image];
    const truncated = app1.layers[0]!.digest;
    const emptied = app2.layers[1]!.digest;
    const flipped = web.config.digest;
    const missing = db.layers[0]!.digest;
    await truncate(data(truncated), 50_000);
    await truncate(data(emptied), 0);
    const bytes = await readFile(data(flipped));
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(data(flipped), bytes);
    await rm(join(root, layout.blobDir(missing as Digest)), { recursive: true });
    const ghost = sha256("a manifest nobody holds");
    const tagLink = join(root, layout.tagCurrentLink("lain/web" as RepositoryName, "ghost" as Tag));
    await mkdir(join(tagLink, ".."), { recursive: true });
    await writeFile(tagLink, ghost);
    // A layer link to a blob nobody holds or names, as a collection leaves behind.
    const orphan = sha256("a layer collected long ago");
    const layerLink = join(root, layout.layerLink("lain/app" as RepositoryName, orphan as Digest));
    await mkdir(join(layerLink, ".."), { recursive: true });
    await writeFile(layerLink, orphan);
    const expected = [`blob-corrupt ${truncated}`, `blob-corrupt ${emptied}`, `blob-corrupt ${flipped}`, `blob-missing ${missing}`, `tag-dangling ${ghost}`, `layer-link-dangling ${orphan}`].sort();

    const dry = await runCli("scrub", config, "--dry-run", "--rate", "50");
    expect(dry.code).toBe(1);
    expect(found(dry.stdout)).toEqual(expected);
    // Each with where it shows: repository and tag.
    expect(dry.stdout).toContain(`blob-corrupt ${truncated} in lain/app:v1:`);
    expect(dry.stdout).toContain(`blob-missing ${missing} in lain/db:v1:`);
    expect(dry.stdout).toContain(`tag-dangling ${ghost} in lain/web:ghost:`);

    const quarantined = await runCli("scrub", config);
    expect(quarantined.code).toBe(1);
    expect(found(quarantined.stdout)).toEqual(expected);
    expect(quarantined.stdout.split("\n").filter((l) => l.endsWith(": quarantined")).length).toBe(3);
    expect(quarantined.stdout).toContain(`layer-link-dangling ${orphan} in lain/app: lain/app's _layers link to ${orphan}: the store does not hold it: unlinked`);
    await expect(readFile(layerLink)).rejects.toThrow(/ENOENT/);
    const registry = await startTestRegistry({ root });
    try {
      for (const [repo, digest] of [["lain/app", truncated], ["lain/app", emptied], ["lain/web", flipped]]) {
        for (const method of ["HEAD", "GET"]) {
          const reply = await call(method, `${registry.url}/v2/${repo}/blobs/${digest}`);
          expect(reply.status, `${method} ${digest}`).toBe(404);
          if (method === "GET") expect(errorCode(reply)).toBe("BLOB_UNKNOWN");
        }
      }
    } finally {
      await registry.close();
    }
    // What is quarantined is found again as missing, no more as corrupt.
    const after = await runCli("scrub", config, "--dry-run");
    expect(found(after.stdout)).toEqual([`blob-missing ${truncated}`, `blob-missing ${emptied}`, `blob-missing ${flipped}`, `blob-missing ${missing}`, `tag-dangling ${ghost}`].sort());

    const repaired = await runCli("scrub", config, "--peer", peer!.url);
    expect(repaired.code).toBe(1);
    expect(repaired.stdout.split("\n").filter((l) => /: repaired \(fetched again in lain\//.test(l)).length).toBe(4);
    expect(repaired.stdout).toMatch(new RegExp(`tag-dangling ${ghost} .*: repair failed`));
    expect(found((await runCli("scrub", config, "--dry-run")).stdout)).toEqual([`tag-dangling ${ghost}`]);
    const served = await startTestRegistry({ root });
    try {
      for (const { repo, tag, image } of images) expect(await pullsWhole(served.url, repo, tag, image), `${repo}:${tag}`).toBe(true);
    } finally {
      await served.close();
    }
  }, 120_000);

  it("--repair on a mirror fetches a damaged cached blob again from proxy.remoteurl", async () => {
    const mirrorRoot = join(work, "mirror");
    const proxy = `proxy:\n  remoteurl: ${peer!.url}`;
    const mirror = await startTestRegistry({ root: mirrorRoot, extraYaml: proxy });
    const { repo, tag, image } = images[2]!;
    try {
      expect(await pullsWhole(mirror.url, repo, tag, image)).toBe(true);
    } finally {
      await mirror.close();
    }
    const layer = image.layers[1]!.digest;
    await truncate(join(mirrorRoot, layout.blobData(layer as Digest)), 10);
    const mirrorConfig = join(work, "mirror.yml");
    await writeFile(mirrorConfig, `version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: ${mirrorRoot}}}\nhttp: {secret: s}\n${proxy}\n`);
    const repaired = await runCli("scrub", mirrorConfig, "--repair");
    expect(repaired.code, repaired.stdout + repaired.stderr).toBe(0);
    expect(repaired.stdout).toContain(`blob-corrupt ${layer} in ${repo}:${tag}:`);
    expect(repaired.stdout).toContain(`: repaired (fetched again in ${repo})`);
    expect((await readFile(join(mirrorRoot, layout.blobData(layer as Digest)))).equals(image.layers[1]!.content)).toBe(true);
  }, 60_000);
});

const s3 = inject("s3");

describe.skipIf(s3 === null || !hasTool("docker-registry"))("scrub on S3 (Ceph RGW): an object cut short", () => {
  it("finds the one blob whose object is shorter than its digest says, quarantines it, and nothing else", async () => {
    const work = await tempDir("lain-scrub-s3-");
    const bucket = await createBucket(s3!);
    const storageYaml = s3StorageYaml(s3!, bucket);
    const distribution = await startDistribution({ storageYaml, secret: "s", configDir: work });
    const images = [randomImage({ layers: 2, layerSize: 200_000 }), randomImage({ layers: 1, layerSize: 200_000 })];
    try {
      for (const [i, image] of images.entries()) await pushImage(distribution.url, "lain/s3", `v${i}`, image);
    } finally {
      await distribution.stop();
    }
    const config = join(work, "config.yml");
    await writeFile(config, `version: 0.1\nlog: {level: warn}\nstorage:\n${storageYaml}\nhttp: {secret: s}\n`);
    const driver = await s3Driver(s3TestOptions(s3!, bucket));
    const cut = images[0]!.layers[1]!;
    await driver.putContent(layout.blobData(cut.digest as Digest), cut.content.subarray(0, 1000));
    try {
      const scrubbed = await runCli("scrub", config);
      expect(scrubbed.code).toBe(1);
      expect(found(scrubbed.stdout)).toEqual([`blob-corrupt ${cut.digest}`]);
      expect(scrubbed.stdout).toContain(`blob-corrupt ${cut.digest} in lain/s3:v0: its 1000 bytes hash to`);
      // Blobs served by the registry itself, not redirected to the store: the test reads them whole.
      const registry = await startTestRegistry({ storageYaml: `${storageYaml}\n  redirect:\n    disable: true` });
      try {
        expect((await call("HEAD", `${registry.url}/v2/lain/s3/blobs/${cut.digest}`)).status).toBe(404);
        expect(await pullsWhole(registry.url, "lain/s3", "v1", images[1]!)).toBe(true);
      } finally {
        await registry.close();
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("storage.scrub: the scrub inside the server", () => {
  it("finds a blob damaged under a serving registry, quarantines it (404 from then on), and counts it in the metrics", async () => {
    const root = await tempDir("lain-scrub-server-");
    const registry = await startTestRegistry({
      root,
      storageYaml: `  filesystem: {rootdirectory: ${root}}\n  scrub: {enabled: true, interval: 1s, rate: 100}`,
      extraYaml: METRICS_ON_MAIN_PORT,
    });
    try {
      const image = randomImage({ layers: 2, layerSize: 50_000 });
      await pushImage(registry.url, "lain/served", "v1", image);
      const damaged = image.layers[0]!;
      await writeFile(join(root, layout.blobData(damaged.digest as Digest)), Buffer.from("not what it was"));
      const metric = async (name: string, labels: Record<string, string> = {}) => sample((await call("GET", `${registry.url}/metrics`)).text, name, labels);
      await until(async () => (await metric("registry_scrub_problems", { kind: "blob-corrupt" })) === 1, "a scrub to find the damage");
      expect(await metric("registry_scrub_runs_total", { result: "ok" })).toBeGreaterThanOrEqual(1);
      expect(await metric("registry_scrub_bytes_total")).toBeGreaterThan(0);
      expect((await call("GET", `${registry.url}/v2/lain/served/blobs/${damaged.digest}`)).status).toBe(404);
      // The rest of the image is untouched, and a push of the blob again makes it whole.
      expect((await call("GET", `${registry.url}/v2/lain/served/blobs/${image.layers[1]!.digest}`)).status).toBe(200);
      await pushImage(registry.url, "lain/served", "v1", image);
      expect(await pullsWhole(registry.url, "lain/served", "v1", image)).toBe(true);
      await until(async () => (await metric("registry_scrub_problems", { kind: "blob-corrupt" })) === 0, "a scrub to find the store whole again");
    } finally {
      await registry.close();
      await rm(root, { recursive: true, force: true });
    }
  }, 60_000);
});
