import { afterEach, describe, expect, it } from "vitest";
import { CollectionBarrier } from "../../src/gc/barrier.js";
import { digestOf } from "../../src/registry/digest.js";
import type { RepositoryName } from "../../src/registry/names.js";
import { Registry } from "../../src/registry/registry.js";
import type { FenceTiming } from "../../src/gc/removal-fence.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { layout } from "../../src/registry/layout.js";

/** Short enough for a test on the real clock, with the same relations as the defaults. */
const FAST: FenceTiming = { pollMs: 10, freshMs: 100, quietMs: 50, noticeMs: 150, heartbeatMs: 10, maxGapMs: 40 };

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

const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe("storage.cache.blobdescriptor: inmemory", () => {
  const name = "cache/repo" as RepositoryName;
  const content = Buffer.from("layer bytes");
  const digest = digestOf(content);
  const registries: Registry[] = [];
  afterEach(async () => {
    for (const r of registries.splice(0)) await r.close();
  });

  async function setup(cached: boolean, driver = countingDriver()) {
    const registry = new Registry(driver.driver, { barrier: new CollectionBarrier(driver.driver, { fence: FAST }), ...(cached ? { cacheEntries: 100 } : {}) });
    registries.push(registry);
    await driver.driver.putContent(layout.blobData(digest), content);
    await registry.repository(name).blobs.link(digest);
    // The epoch must be quiet for a while before the cache vouches for anything.
    await new Promise((r) => setTimeout(r, FAST.quietMs + 3 * FAST.pollMs));
    return { registry, stats: driver.stats, driver: driver.driver };
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

  it("statInStore always asks the store, cache or not", async () => {
    const { registry, stats } = await setup(true);
    const blobs = registry.repository(name).blobs;
    await blobs.stat(digest);
    const after = stats();
    expect(await blobs.statInStore(digest)).toEqual({ digest, size: content.length });
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

  it("another instance's removal on the shared store stops this cache vouching", async () => {
    const shared = countingDriver();
    const { registry } = await setup(true, shared);
    const blobs = registry.repository(name).blobs;
    expect(await blobs.stat(digest)).toBeDefined();
    // A second instance on the same store (its own process in production) removes the link.
    const other = new Registry(shared.driver, { barrier: new CollectionBarrier(shared.driver, { fence: FAST }) });
    registries.push(other);
    expect(await other.repository(name).blobs.unlink(digest)).toBe(true);
    expect(await blobs.stat(digest)).toBeUndefined();
    // And a collector removing the data: the global entry goes too.
    await other.repository(name).blobs.link(digest);
    await until(() => registry.blobs.cache !== undefined && registry.blobs.cache.snapshot() !== undefined);
    expect(await registry.blobs.stat(digest)).toBeDefined();
    expect(await other.blobs.remove(digest, () => true)).toBe(true);
    expect(await registry.blobs.stat(digest)).toBeUndefined();
    expect(await blobs.stat(digest)).toBeUndefined();
    // Once the store is quiet again the cache vouches again, but nothing from before the removal.
    await until(() => registry.blobs.cache?.snapshot() !== undefined);
    expect(await registry.blobs.stat(digest)).toBeUndefined();
  });

  it("a blob whose data vanished behind the cache's back answers BLOB_UNKNOWN on open and is forgotten", async () => {
    const { registry, driver } = await setup(true);
    const blobs = registry.repository(name).blobs;
    expect(await blobs.stat(digest)).toBeDefined();
    // Not announced: an operator's rm, or distribution's garbage-collect run against a serving registry.
    await driver.delete(layout.blobDir(digest));
    expect(await blobs.stat(digest)).toBeDefined();
    await expect(blobs.open(digest, 0, content.length)).rejects.toMatchObject({ code: "BLOB_UNKNOWN" });
    expect(await blobs.stat(digest)).toBeUndefined();
  });
});
