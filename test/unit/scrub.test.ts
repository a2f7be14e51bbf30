import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { scrubStore } from "../../src/gc/scrub.js";
import type { Digest } from "../../src/registry/digest.js";
import { layout } from "../../src/registry/layout.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";

const digestOf = (content: Buffer) => `sha256:${createHash("sha256").update(content).digest("hex")}` as Digest;

/** Writes an image the way a push leaves it: blobs first, then the manifest, then the links. */
async function writeImage(driver: StorageDriver, name: RepositoryName, tag: Tag, seed: string): Promise<void> {
  const layer = Buffer.from(`layer of ${seed}`);
  const config = Buffer.from(`{"config of":"${seed}"}`);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: digestOf(layer), size: layer.length }],
    }),
  );
  for (const blob of [layer, config, manifest]) await driver.putContent(layout.blobData(digestOf(blob)), blob);
  for (const blob of [layer, config]) await driver.putContent(layout.layerLink(name, digestOf(blob)), Buffer.from(digestOf(blob)));
  await driver.putContent(layout.revisionLink(name, digestOf(manifest)), Buffer.from(digestOf(manifest)));
  await driver.putContent(layout.tagCurrentLink(name, tag), Buffer.from(digestOf(manifest)));
}

describe("the scrub beside a serving registry", () => {
  it("takes an image pushed after its walk of the blobs for what it is, not for missing blobs", async () => {
    const store = new InMemoryDriver();
    await writeImage(store, "lain/old" as RepositoryName, "v1" as Tag, "old");
    let pushed = false;
    // The walk answers what the store held when it was asked; a push lands right after.
    const driver = new Proxy(store, {
      get(target, key, receiver) {
        if (key !== "walk") return Reflect.get(target, key, receiver) as unknown;
        return async (path: string) => {
          const listing = await target.walk(path);
          if (path === layout.blobsRoot && !pushed) {
            pushed = true;
            await writeImage(target, "lain/new" as RepositoryName, "v1" as Tag, "new");
          }
          return listing;
        };
      },
    });
    const report = await scrubStore(driver, { dryRun: false });
    expect(pushed).toBe(true);
    expect(report.repositories).toBe(2);
    expect(report.problems).toEqual([]);
    // And the new image's links are all still there.
    expect((await store.walk(layout.layersDir("lain/new" as RepositoryName))).length).toBe(2);
  });
});
