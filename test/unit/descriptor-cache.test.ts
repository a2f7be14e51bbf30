import { describe, expect, it } from "vitest";
import { createDescriptorCache } from "../../src/registry/blobs.js";
import { digestOf } from "../../src/registry/digest.js";
import type { RepositoryName } from "../../src/registry/names.js";
import { Registry } from "../../src/registry/registry.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { layout } from "../../src/storage/layout.js";

/** The in-memory driver, counting stat calls. */
function countingDriver(): { driver: StorageDriver; stats: () => number } {
  const inner = new InMemoryDriver();
  let stats = 0;
  const driver = Object.create(inner) as StorageDriver;
  driver.stat = (path) => {
    stats++;
    return inner.stat(path);
  };
  return { driver, stats: () => stats };
}

describe("storage.cache.blobdescriptor: inmemory", () => {
  const name = "cache/repo" as RepositoryName;
  const content = Buffer.from("layer bytes");
  const digest = digestOf(content);

  async function setup(cached: boolean) {
    const { driver, stats } = countingDriver();
    const registry = new Registry(driver, cached ? { cache: createDescriptorCache(100) } : {});
    await driver.putContent(layout.blobData(digest), content);
    await registry.repository(name).blobs.link(digest);
    return { registry, stats };
  }

  it("answers repeated stats of a linked blob without touching the store", async () => {
    const { registry, stats } = await setup(true);
    const blobs = registry.repository(name).blobs;
    expect(await blobs.stat(digest)).toEqual({ digest, size: content.length });
    const after = stats();
    for (let i = 0; i < 5; i++) expect(await blobs.stat(digest)).toEqual({ digest, size: content.length });
    expect(stats()).toBe(after);
  });

  it("without the cache, every stat goes to the store", async () => {
    const { registry, stats } = await setup(false);
    const blobs = registry.repository(name).blobs;
    await blobs.stat(digest);
    const after = stats();
    await blobs.stat(digest);
    expect(stats()).toBeGreaterThan(after);
  });

  it("forgets a repository's link when it is deleted, keeping it per repository", async () => {
    const { registry } = await setup(true);
    const blobs = registry.repository(name).blobs;
    await blobs.stat(digest);
    expect(await registry.repository("cache/other" as RepositoryName).blobs.stat(digest)).toBeUndefined();
    await blobs.unlink(digest);
    expect(await blobs.stat(digest)).toBeUndefined();
  });

  it("is bounded: old entries are evicted", () => {
    const cache = createDescriptorCache(3);
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, i);
    expect(cache.size).toBe(3);
  });
});
