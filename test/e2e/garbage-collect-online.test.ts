import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { collectGarbage, type CollectReport } from "../../src/gc/collect.js";
import { exists, type StorageDriver } from "../../src/storage/driver.js";
import { s3Driver } from "../../src/storage/factory.js";
import { FilesystemDriver } from "../../src/storage/filesystem.js";
import { layout } from "../../src/registry/layout.js";
import type { Digest } from "../../src/registry/digest.js";
import { call } from "../helpers/http.js";
import { descriptor, manifestOf, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, pushBlob, sha256, type Blob, type Manifest } from "../helpers/oci.js";
import { METRICS_ON_MAIN_PORT, scrape } from "../helpers/metrics.js";
import { freePort, startLainProcess, type ServerProcess } from "../helpers/process.js";
import { startTestRegistry, tempDir } from "../helpers/registry.js";
import { createBucket, s3StorageYaml, s3TestOptions } from "../helpers/s3.js";
import { afterStoreTick } from "../helpers/store.js";

const server = inject("s3");
/** Unreferenced blobs older than this are garbage; a push (blobs, then its manifest) takes far less. */
const DELAY_MS = 1500;
const REPOSITORIES = ["lain/p0", "lain/p1", "lain/p2"];

function randomBlob(mediaType = OCI_LAYER): Blob {
  const content = randomBytes(2048);
  return { mediaType, digest: sha256(content), content };
}

interface Pushed {
  repo: string;
  manifest: Manifest;
  blobs: Blob[];
}

/**
 * Pushes as docker does (HEAD each blob, upload only what is missing, then the manifest) while
 * collections run back to back on the same store. Half the pushes name a blob that has been
 * garbage for longer than the delay (a layer pushed long ago whose image went), so the
 * collections are deciding on exactly the blobs the pushes start using; mounts do the same.
 */
async function pushWhileCollecting(urls: string[], driver: StorageDriver, budgetMs: number): Promise<void> {
  // With several instances each step of a push goes to the next one: a HEAD on one, the upload
  // on another, the manifest on a third.
  let step = 0;
  const next = () => urls[step++ % urls.length] as string;
  const garbage: Array<{ repo: string; blob: Blob; at: number }> = [];
  const plant = async (repo: string) => {
    const blob = randomBlob();
    await pushBlob(next(), repo, blob);
    garbage.push({ repo, blob, at: Date.now() });
  };
  const reused = new Set<string>();
  const pushed: Pushed[] = [];
  const refused: string[] = [];
  const mounts = new Map<number, number>();
  const reports: CollectReport[] = [];
  const started = Date.now();
  for (const repo of REPOSITORIES) await plant(repo);

  let pushing = true;
  const collecting = (async () => {
    for (let runs = 0; pushing && runs < 200; runs++) reports.push(await collectGarbage(driver, { dryRun: false, deleteUntagged: false, delayMs: DELAY_MS }));
  })();
  // Its failure is the test's, when it is awaited below; not an unhandled rejection meanwhile.
  collecting.catch(() => undefined);
  const swept = () => reports.filter((r) => r.blobsDeleted.length > 0).length;
  try {
    for (let i = 0; i < 400 && (swept() < 3 || i < 30) && Date.now() - started < budgetMs; i++) {
      const repo = REPOSITORIES[i % REPOSITORIES.length] as string;
      const old = i % 2 === 0 ? garbage.find((g) => g.repo === repo && !reused.has(g.blob.digest) && Date.now() - g.at > DELAY_MS * 1.5) : undefined;
      if (old) reused.add(old.blob.digest);
      const config = randomBlob(OCI_CONFIG);
      const layers = [old?.blob ?? randomBlob(), randomBlob()];
      const manifest = manifestOf({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptor(config), layers: layers.map(descriptor) });
      for (const blob of [config, ...layers]) {
        const head = await call("HEAD", `${next()}/v2/${repo}/blobs/${blob.digest}`);
        if (head.status !== 200) await pushBlob(next(), repo, blob);
      }
      const put = await call("PUT", `${next()}/v2/${repo}/manifests/t${i}`, { headers: { "content-type": OCI_MANIFEST }, body: manifest.content });
      if (put.status === 201) pushed.push({ repo, manifest, blobs: [config, ...layers] });
      else refused.push(`manifest put ${put.status}: ${put.text}`);
      if (i % 3 === 1) {
        // A mount of garbage from its repository: 201, or 202 (an upload session) when it is gone; never refused.
        const source = garbage.find((g) => !reused.has(g.blob.digest) && Date.now() - g.at > DELAY_MS * 1.5);
        if (source) {
          const mount = await call("POST", `${next()}/v2/lain/mounts/blobs/uploads/?mount=${source.blob.digest}&from=${source.repo}`);
          mounts.set(mount.status, (mounts.get(mount.status) ?? 0) + 1);
          if (mount.status !== 201 && mount.status !== 202) refused.push(`mount ${mount.status}: ${mount.text}`);
        }
      }
      await plant(REPOSITORIES[(i + 1) % REPOSITORIES.length] as string);
    }
  } finally {
    pushing = false;
    await collecting;
  }

  expect(refused).toEqual([]);
  expect(swept()).toBeGreaterThanOrEqual(3);
  expect(reused.size).toBeGreaterThanOrEqual(5);
  for (const { repo, manifest, blobs } of pushed) {
    const got = await call("GET", `${next()}/v2/${repo}/manifests/${manifest.digest}`, { headers: { accept: OCI_MANIFEST } });
    expect(got.status).toBe(200);
    for (const blob of blobs) {
      // fetch follows the store's redirect (S3: a presigned URL).
      const data = { body: Buffer.from(await (await fetch(`${next()}/v2/${repo}/blobs/${blob.digest}`)).arrayBuffer()) };
      const deletedBy = reports.findIndex((r) => r.blobsDeleted.includes(blob.digest as Digest));
      expect(data.body.equals(blob.content), `${repo}@${blob.digest} (${blob.mediaType}, reused garbage: ${reused.has(blob.digest)}, removed by collection ${deletedBy} ${JSON.stringify(reports[deletedBy] ?? {}).slice(0, 300)})`).toBe(true);
    }
  }
  // Garbage nobody took up goes once it is old enough (mounted copies included: nothing names them).
  await new Promise((r) => setTimeout(r, DELAY_MS));
  await afterStoreTick(driver);
  await collectGarbage(driver, { dryRun: false, deleteUntagged: false, delayMs: DELAY_MS });
  for (const { blob } of garbage.filter((g) => !reused.has(g.blob.digest))) {
    expect(await exists(driver, layout.blobData(blob.digest as Digest)), blob.digest).toBe(false);
  }
  const rescued = reports.reduce((n, r) => n + r.blobsRescued, 0);
  process.stderr.write(
    `online gc on ${driver.name}, ${urls.length} instance(s): ${reports.length} collections (${swept()} removed blobs) during ${pushed.length} pushes, ` +
      `${reused.size} of them naming old garbage, ${rescued} blobs rescued, mounts ${JSON.stringify(Object.fromEntries(mounts))}, 0 refused\n`,
  );
}

describe("garbage collection refuses no push", () => {
  it("on the filesystem: collections back to back while pushes and mounts take up old garbage", async () => {
    const root = await tempDir("lain-gc-online-");
    const registry = await startTestRegistry({ root });
    try {
      await pushWhileCollecting([registry.url], new FilesystemDriver(root), 40_000);
    } finally {
      await registry.close();
      await rm(root, { recursive: true, force: true });
    }
  }, 120_000);

  it("on several instances, each collecting on its own schedule with a descriptor cache, and a collection of the CLI's kind beside them", async () => {
    const root = await tempDir("lain-gc-instances-");
    const config = join(root, "..", `${basename(root)}.yml`);
    await writeFile(
      config,
      [
        "version: 0.1",
        "log: {level: warn}",
        "storage:",
        `  filesystem: {rootdirectory: ${root}}`,
        "  delete: {enabled: true}",
        "  cache: {blobdescriptor: inmemory}",
        `  gc: {enabled: true, interval: 1s, delay: ${DELAY_MS}ms}`,
        "http:",
        "  secret: test-secret",
        METRICS_ON_MAIN_PORT,
      ].join("\n"),
    );
    const instances: ServerProcess[] = [];
    try {
      for (let i = 0; i < 2; i++) instances.push(await startLainProcess(config, await freePort()));
      await pushWhileCollecting(instances.map((p) => p.url), new FilesystemDriver(root), 40_000);
      // Each instance collected in its own process meanwhile, and none of its runs failed.
      for (const instance of instances) {
        const metrics = await scrape(`${instance.url}/metrics`);
        expect(metrics("registry_gc_runs_total", { result: "ok" }), instance.output()).toBeGreaterThanOrEqual(2);
        expect(metrics("registry_gc_runs_total", { result: "error" }), instance.output()).toBe(0);
      }
    } finally {
      await Promise.all(instances.map((p) => p.stop()));
      await rm(root, { recursive: true, force: true });
      await rm(config, { force: true });
    }
  }, 120_000);

  it.skipIf(!server)("on S3 (Ceph RGW): the same", async () => {
    const bucket = await createBucket(server!);
    const registry = await startTestRegistry({ storageYaml: s3StorageYaml(server!, bucket) });
    try {
      await pushWhileCollecting([registry.url], await s3Driver(s3TestOptions(server!, bucket)), 60_000);
    } finally {
      await registry.close();
    }
  }, 150_000);
});
