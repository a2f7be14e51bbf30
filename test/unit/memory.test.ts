import { setTimeout as sleep } from "node:timers/promises";
import { getHeapStatistics } from "node:v8";
import { describe, expect, it } from "vitest";
import { paceBufferCollection } from "../../src/memory.js";

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
