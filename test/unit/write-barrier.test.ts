import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { CollectionBarrier } from "../../src/gc/barrier.js";
import { digestOf } from "../../src/registry/digest.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
import { Registry } from "../../src/registry/registry.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { bodyOf } from "../helpers/store.js";

/** An in-memory store that records every path a call names. */
function recordingDriver(): { driver: StorageDriver; paths: string[] } {
  const inner = new InMemoryDriver();
  const paths: string[] = [];
  const driver = new Proxy(inner, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        for (const arg of args) for (const path of [arg].flat()) if (typeof path === "string" && path.startsWith("/")) paths.push(path);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { driver, paths };
}

/** A push and a pull of one small image, and a DELETE of its tag and of a blob link. */
async function pushPullDelete(registry: Registry): Promise<void> {
  const name = "house/app" as RepositoryName;
  const repo = registry.repository(name);
  const layer = Buffer.from("a layer");
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  for (const content of [layer, config]) {
    const { id } = await repo.startUpload();
    await repo.completeUpload(id, digestOf(content), bodyOf(Readable.from([content])));
  }
  const descriptor = (content: Buffer, mediaType: string) => ({ mediaType, digest: digestOf(content), size: content.length });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: descriptor(config, "application/vnd.oci.image.config.v1+json"),
      layers: [descriptor(layer, "application/vnd.oci.image.layer.v1.tar+gzip")],
    }),
  );
  await repo.putManifest("v1" as Tag, manifest, "application/vnd.oci.image.manifest.v1+json");
  expect(await repo.manifest("v1" as Tag)).toBeDefined();
  expect(await repo.statBlob(digestOf(layer), true)).toEqual({ digest: digestOf(layer), size: layer.length });
  expect(await repo.untag("v1" as Tag)).toBe(true);
  expect(await repo.unlinkBlob(digestOf(layer))).toBe(true);
}

describe("the write barrier, as the domain sees it", () => {
  it("a Registry built without a collector does no GC I/O", async () => {
    const { driver, paths } = recordingDriver();
    const registry = new Registry(driver);
    await pushPullDelete(registry);
    await registry.close();
    expect(paths.length).toBeGreaterThan(10);
    expect(paths.filter((p) => p.includes("/_gc/"))).toEqual([]);
  });

  it("with a collection barrier the same writes and removals go through the protocol's objects", async () => {
    const { driver, paths } = recordingDriver();
    const registry = new Registry(driver, { barrier: new CollectionBarrier(driver) });
    await pushPullDelete(registry);
    await registry.close();
    // The fence's epoch: read by the watch, rewritten before the blob link's removal.
    expect(paths.filter((p) => p.endsWith("/_gc/epoch")).length).toBeGreaterThan(1);
  });
});
