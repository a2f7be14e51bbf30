import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { paceBufferCollection } from "../../src/memory.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
import { Registry } from "../../src/registry/registry.js";
import { FilesystemDriver } from "../../src/storage/filesystem.js";
import { OCI_CONFIG, OCI_MANIFEST, sha256 } from "../helpers/oci.js";
import { tempDir } from "../helpers/registry.js";

describe("buffer pacing", () => {
  it("collects the young generation as dead buffers pile up, so they do not wait for a full collection", async () => {
    const pacer = paceBufferCollection({ stepBytes: 4 * 1024 * 1024, intervalMs: 1 });
    try {
      const start = getHeapStatistics().external_memory;
      let peak = 0;
      // 256 MiB through 64 KiB buffers that die at once, as a streamed body's chunks do.
      for (let round = 0; round < 256 && pacer.collections < 8; round++) {
        for (let i = 0; i < 16; i++) Buffer.allocUnsafeSlow(64 * 1024).fill(i);
        peak = Math.max(peak, getHeapStatistics().external_memory - start);
        await sleep(2);
      }
      expect(pacer.collections).toBeGreaterThan(0);
      // V8's own trigger lets ~64 MiB of external memory build up between collections.
      expect(peak).toBeLessThan(48 * 1024 * 1024);
      expect(typeof (globalThis as { gc?: unknown }).gc).toBe("undefined");
    } finally {
      pacer.stop();
    }
  });
});

/** Bytes alive after a full collection, in V8's heap and in array buffers (V8's collector from a fresh context, as src/memory.ts takes it). */
function liveBytes(): number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  // Twice: what the first frees can hold more (finalizers, weak references).
  gc();
  gc();
  const { arrayBuffers, heapUsed } = process.memoryUsage();
  return arrayBuffers + heapUsed;
}

describe("what caches keep", () => {
  // The soak of issue 34 grew without bound: each small cached entry held the 64 KiB slab it was cut from.
  it("a cached small file keeps its bytes, not the shared slab it was read into", async () => {
    const root = await tempDir("lain-slab-");
    const files = 2000;
    try {
      const driver = new FilesystemDriver(root);
      for (let i = 0; i < files; i++) await driver.putContent(`/f/${i}`, Buffer.from(`sha256:${String(i).padStart(64, "0")}`), true);
      const before = liveBytes();
      for (let i = 0; i < files; i++) {
        await driver.getContent(`/f/${i}`);
        // Other small buffers of the same moment (a request's), so that each read lands in a slab of its own.
        Buffer.allocUnsafe(Buffer.poolSize / 2 - 1);
      }
      const kept = liveBytes() - before;
      // 71 bytes a file, its path and the cache's entry; a slab each would be 128 MiB.
      expect(kept).toBeLessThan(files * 2 * 1024);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("a cached manifest keeps its bytes, not the request's slab", async () => {
    const root = await tempDir("lain-slab-");
    const registry = new Registry(new FilesystemDriver(root));
    const manifests = 300;
    try {
      const repo = registry.repository("slab/test" as RepositoryName);
      const before = liveBytes();
      for (let i = 0; i < manifests; i++) {
        const content = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: sha256(String(i)), size: 1 }, layers: [] }));
        await repo.manifests.put(`v${i}` as Tag, content, OCI_MANIFEST, { checkReferences: false });
        Buffer.allocUnsafe(Buffer.poolSize / 2 - 1);
      }
      const kept = liveBytes() - before;
      // ~250 bytes each and the cache's entry; a slab each would be 19 MiB.
      expect(kept).toBeLessThan(manifests * 8 * 1024);
    } finally {
      await registry.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
