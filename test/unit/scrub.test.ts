import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { scrubStore } from "../../src/gc/scrub.js";
import type { Digest } from "../../src/registry/digest.js";
import { layout } from "../../src/registry/layout.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { writeImage } from "../helpers/store.js";

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

describe("the scrub's reading of manifests", () => {
  it("reports a blob whose size is not the one its manifest gives, with the tag that reaches it", async () => {
    const store = new InMemoryDriver();
    const name = "lain/sized" as RepositoryName;
    const layer = Buffer.from("three");
    const digest = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}` as Digest;
    const layerDigest = digest(layer);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "x", digest: layerDigest, size: layer.length }, layers: [{ mediaType: "y", digest: layerDigest, size: layer.length + 1 }] }));
    const manifestDigest = digest(manifest);
    await store.putContent(layout.blobData(layerDigest), layer);
    await store.putContent(layout.blobData(manifestDigest), manifest);
    await store.putContent(layout.revisionLink(name, manifestDigest), Buffer.from(manifestDigest));
    await store.putContent(layout.tagCurrentLink(name, "v1" as Tag), Buffer.from(manifestDigest));
    const report = await scrubStore(store, { dryRun: true });
    expect(report.problems).toEqual([
      { kind: "blob-size", digest: layerDigest, where: [{ repository: name, tags: ["v1"] }], detail: `${name}@${manifestDigest} gives ${layerDigest} 6 bytes; it has 5` },
    ]);
  });
});
