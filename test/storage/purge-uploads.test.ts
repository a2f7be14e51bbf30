import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { describe, expect, inject, it } from "vitest";
import { purgeUploads } from "../../src/gc/purge-uploads.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { ossDriver } from "../../src/storage/factory.js";
import { FilesystemDriver } from "../../src/storage/filesystem.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { layout } from "../../src/registry/layout.js";
import type { RepositoryName } from "../../src/registry/names.js";
import { tempDir } from "../helpers/registry.js";
import { OSS_CREDENTIALS, ossTestOptions, OssTestServer } from "../helpers/oss-server.js";
import { s3TestDriver } from "../helpers/s3.js";

const HOUR = 3_600_000;
const server = inject("s3");
const now = new Date("2026-11-28T12:00:00Z");

/** An upload session as the registry leaves it: startedat and some data (6 MiB: a multipart part on S3). */
async function session(driver: StorageDriver, name: string, id: string, hoursAgo: number): Promise<string> {
  const repo = name as RepositoryName;
  await driver.putContent(layout.uploadStartedAt(repo, id), Buffer.from(new Date(now.getTime() - hoursAgo * HOUR).toISOString()));
  const writer = await driver.writer(layout.uploadData(repo, id), false);
  writer.stream.end(randomBytes(6 * 1024 * 1024));
  await new Promise((resolve) => writer.stream.once("finish", resolve));
  await writer.close();
  return layout.uploadData(repo, id);
}

const ids = ["0f1e2d3c-0000-4000-8000-000000000001", "0f1e2d3c-0000-4000-8000-000000000002", "0f1e2d3c-0000-4000-8000-000000000003"];

function purgingSuite(name: string, create: () => Promise<{ driver: StorageDriver; cleanup?: () => Promise<void> }>) {
  describe(`upload purging on ${name}`, () => {
    it("removes sessions older than the age in every repository (nested, without manifests too), keeps the rest", async () => {
      const { driver, cleanup } = await create();
      try {
        const old = await session(driver, "lain/app", ids[0]!, 200);
        const young = await session(driver, "lain/app", ids[1]!, 2);
        const nested = await session(driver, "team/sub/deep", ids[2]!, 500);

        const dry = await purgeUploads(driver, { ageMs: 168 * HOUR, dryRun: true }, now);
        expect(dry.purged.sort()).toEqual([`lain/app/_uploads/${ids[0]}`, `team/sub/deep/_uploads/${ids[2]}`]);
        expect((await driver.stat(old)).size).toBeGreaterThan(0);

        const report = await purgeUploads(driver, { ageMs: 168 * HOUR, dryRun: false }, now);
        expect(report).toEqual({ purged: dry.purged, kept: 1 });
        for (const gone of [old, nested]) {
          await expect(driver.stat(gone)).rejects.toThrow(/not found/);
          // Nothing is left to resume either: on S3/OSS the multipart upload was aborted.
          const writer = await driver.writer(gone, true);
          expect(writer.startSize).toBe(0);
          await writer.cancel();
        }
        expect((await driver.stat(young)).size).toBe(6 * 1024 * 1024);
      } finally {
        await cleanup?.();
      }
    });
  });
}

purgingSuite("filesystem", async () => {
  const root = await tempDir();
  return { driver: new FilesystemDriver(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});
purgingSuite("inmemory", async () => ({ driver: new InMemoryDriver() }));
if (server) purgingSuite("s3 (Ceph RGW)", async () => ({ driver: await s3TestDriver(server) }));
purgingSuite("oss (the signature-checking test server)", async () => {
  const oss = await OssTestServer.start({ bucket: "purge", ...OSS_CREDENTIALS });
  return { driver: await ossDriver(ossTestOptions(oss, "purge")), cleanup: () => oss.close() };
});
