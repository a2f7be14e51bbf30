import { rm } from "node:fs/promises";
import { describe, expect, inject, it } from "vitest";
import { collectGarbage } from "../../src/gc/collect.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { s3Driver } from "../../src/storage/factory.js";
import { FilesystemDriver } from "../../src/storage/filesystem.js";
import { call } from "../helpers/http.js";
import { artifactFor, indexOf, pushBlob, pushImage, pushManifest, randomImage, sha256 } from "../helpers/oci.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { createBucket, s3StorageYaml, s3TestOptions } from "../helpers/s3.js";
import { afterStoreTick } from "../helpers/store.js";

const server = inject("s3");
const options = { dryRun: false, delayMs: 0, settleMs: 0 };

async function exists(registry: TestRegistry, repo: string, kind: "manifests" | "blobs", digest: string): Promise<boolean> {
  return (await call("HEAD", `${registry.url}/v2/${repo}/${kind}/${digest}`, { headers: { accept: "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json" } })).status === 200;
}

/** The same scenario on every driver: what --delete-untagged keeps and what it removes. */
async function scenario(registry: TestRegistry, driver: StorageDriver): Promise<void> {
  const platforms = ["amd64", "arm64"].map((architecture) => randomImage({ architecture, layers: 1 }));
  const index = indexOf(platforms);
  for (const image of platforms) await pushImage(registry.url, "lain/multi", image.manifest.digest, image);
  await pushManifest(registry.url, "lain/multi", "v1", index);
  const signature = artifactFor(index, "application/vnd.example.signature");
  await pushImage(registry.url, "lain/multi", signature.manifest.digest, signature);
  const stray = randomImage({ layers: 1 });
  await pushImage(registry.url, "lain/multi", stray.manifest.digest, stray);
  const orphan = Buffer.from("orphan");
  await pushBlob(registry.url, "lain/multi", { mediaType: "application/octet-stream", content: orphan, digest: sha256(orphan) });

  // Just written, and still garbage with no delay: once the store's clock has moved on.
  await afterStoreTick(driver);
  const report = await collectGarbage(driver, { ...options, deleteUntagged: true });
  expect(report.manifestsDeleted).toEqual([`lain/multi@${stray.manifest.digest}`]);
  // The tagged index's children and its referrer stay, with their blobs.
  for (const image of platforms) {
    expect(await exists(registry, "lain/multi", "manifests", image.manifest.digest)).toBe(true);
    expect(await exists(registry, "lain/multi", "blobs", image.layers[0]!.digest)).toBe(true);
  }
  expect(await exists(registry, "lain/multi", "manifests", signature.manifest.digest)).toBe(true);
  expect(await exists(registry, "lain/multi", "blobs", signature.layers[0]!.digest)).toBe(true);
  const referrers = await call("GET", `${registry.url}/v2/lain/multi/referrers/${index.digest}`);
  expect(referrers.json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest)).toEqual([signature.manifest.digest]);
  // The untagged image and the orphan are gone.
  expect(await exists(registry, "lain/multi", "manifests", stray.manifest.digest)).toBe(false);
  expect(report.blobsDeleted).toEqual(expect.arrayContaining([stray.layers[0]!.digest, stray.config.digest, sha256(orphan)]));
  expect(report.blobsDeleted).not.toContain(index.digest);
}

describe("garbage-collect --delete-untagged keeps an index's children and a kept manifest's referrers", () => {
  it("on the filesystem", async () => {
    const root = await tempDir("lain-gc-domain-");
    const registry = await startTestRegistry({ root });
    try {
      await scenario(registry, new FilesystemDriver(root));
    } finally {
      await registry.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it.skipIf(!server)("on S3 (Ceph RGW)", async () => {
    const bucket = await createBucket(server!);
    const registry = await startTestRegistry({ storageYaml: s3StorageYaml(server!, bucket) });
    try {
      await scenario(registry, await s3Driver(s3TestOptions(server!, bucket)));
    } finally {
      await registry.close();
    }
  });
});
