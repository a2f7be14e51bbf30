import { describe, expect, it } from "vitest";
import { CollectionBarrier } from "../../src/gc/barrier.js";
import { DescriptorCache } from "../../src/registry/descriptor-cache.js";
import { FENCE_TIMING, RemovalFence, RemovalWatch } from "../../src/gc/removal-fence.js";
import { StorageUnavailableError, type StorageDriver } from "../../src/storage/driver.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { gcPaths } from "../../src/gc/paths.js";
import { FakeClock } from "../helpers/fake-clock.js";

const T = FENCE_TIMING;

/** The in-memory driver, whose epoch reads or writes can be held up or made to fail. */
function storeWithGates() {
  const inner = new InMemoryDriver();
  const gates = { reads: undefined as Promise<void> | undefined, writes: undefined as Promise<void> | undefined, failWrites: false };
  const driver = Object.create(inner) as StorageDriver;
  driver.getContent = async (path) => {
    if (path === gcPaths.removalEpoch) await gates.reads;
    return inner.getContent(path);
  };
  driver.putContent = async (path, content) => {
    if (path === gcPaths.removalEpoch) {
      await gates.writes;
      if (gates.failWrites) throw new Error("store refuses writes");
    }
    return inner.putContent(path, content);
  };
  return { driver, gates, inner };
}

/** A gate the test opens later. */
function gate(): { closed: Promise<void>; open: () => void } {
  let open!: () => void;
  const closed = new Promise<void>((resolve) => (open = resolve));
  return { closed, open };
}

describe("the removal fence's timing", () => {
  it("satisfies the argument of removal-fence.ts", () => {
    expect(T.noticeMs).toBeGreaterThan(T.freshMs);
    expect(T.maxGapMs).toBeLessThanOrEqual(T.quietMs);
    expect(T.heartbeatMs).toBeLessThan(T.maxGapMs);
    expect(T.pollMs).toBeLessThan(T.freshMs);
  });
});

describe("RemovalWatch: when a cache may vouch", () => {
  it("trusts only once the epoch has been quiet for quietMs, and only while its last read is fresh", async () => {
    const clock = new FakeClock();
    const { driver } = storeWithGates();
    const watch = new RemovalWatch(driver, () => undefined, T, clock);
    await watch.poll();
    expect(watch.trusted()).toBe(false);
    for (let waited = T.pollMs; waited < T.quietMs; waited += T.pollMs) {
      await clock.advance(T.pollMs);
      await watch.poll();
      expect(watch.trusted()).toBe(false);
    }
    await clock.advance(T.pollMs);
    await watch.poll();
    expect(watch.trusted()).toBe(true);
    await clock.advance(T.freshMs + 1);
    expect(watch.trusted()).toBe(false);
    await watch.poll();
    expect(watch.trusted()).toBe(true);
  });

  it("a read that fails keeps nothing alive: trust lapses after freshMs", async () => {
    const clock = new FakeClock();
    const { driver, gates } = storeWithGates();
    const watch = new RemovalWatch(driver, () => undefined, T, clock);
    await watch.poll();
    await clock.advance(T.quietMs);
    await watch.poll();
    expect(watch.trusted()).toBe(true);
    const hung = gate();
    gates.reads = hung.closed;
    const stuck = watch.poll();
    await clock.advance(T.freshMs + 1);
    expect(watch.trusted()).toBe(false);
    hung.open();
    await stuck;
    // The read that hung began long ago: it does not make the watch fresh again.
    expect(watch.trusted()).toBe(false);
  });

  it("a changed epoch empties the cache and restarts the quiet period", async () => {
    const clock = new FakeClock();
    const { driver } = storeWithGates();
    let changes = 0;
    const watch = new RemovalWatch(driver, () => changes++, T, clock);
    await watch.poll();
    await clock.advance(T.quietMs);
    await watch.poll();
    expect(watch.trusted()).toBe(true);
    await driver.putContent(gcPaths.removalEpoch, Buffer.from("another instance removes something"));
    await watch.poll();
    expect(changes).toBe(2);
    expect(watch.trusted()).toBe(false);
  });

  it("a result read while the epoch changed is not kept", async () => {
    const clock = new FakeClock();
    const { driver } = storeWithGates();
    const watch = new RemovalWatch(driver, () => undefined, T, clock);
    await watch.poll();
    await clock.advance(T.quietMs);
    await watch.poll();
    const snapshot = watch.snapshot();
    expect(snapshot).toBeDefined();
    // The store read for the entry is slow; meanwhile a removal is announced and seen.
    await driver.putContent(gcPaths.removalEpoch, Buffer.from("announced"));
    await watch.poll();
    expect(watch.holds(snapshot)).toBe(false);
    // Even once the new epoch has been quiet long enough: the read began under the old one.
    for (let i = 0; i <= T.quietMs / T.pollMs; i++) {
      await clock.advance(T.pollMs);
      await watch.poll();
    }
    expect(watch.trusted()).toBe(true);
    expect(watch.holds(snapshot)).toBe(false);
  });
});

describe("RemovalFence: the remover's side", () => {
  it("removes nothing until noticeMs after its first rewrite of the epoch", async () => {
    const clock = new FakeClock();
    const { driver } = storeWithGates();
    const fence = new RemovalFence(driver, T, () => undefined, clock);
    let removedAt: number | undefined;
    const removal = fence.remove(async () => {
      removedAt = clock.now();
      return true;
    });
    await clock.advance(T.noticeMs - 1);
    expect(removedAt).toBeUndefined();
    await clock.advance(100);
    expect(await removal).toBe(true);
    expect(removedAt).toBeGreaterThanOrEqual(T.noticeMs);
  });

  it("while held, rewrites the epoch every heartbeat: no cache becomes trusted", async () => {
    const clock = new FakeClock();
    const { driver } = storeWithGates();
    const watch = new RemovalWatch(driver, () => undefined, T, clock);
    const fence = new RemovalFence(driver, T, () => undefined, clock);
    const release = fence.hold();
    for (let i = 0; i < 30; i++) {
      await watch.poll();
      expect(watch.trusted()).toBe(false);
      await clock.advance(T.pollMs);
    }
    release();
    await clock.advance(T.heartbeatMs);
    for (let i = 0; i <= T.quietMs / T.pollMs + 1; i++) {
      await watch.poll();
      await clock.advance(T.pollMs);
    }
    await watch.poll();
    expect(watch.trusted()).toBe(true);
  });

  it("an entry cached just before a removal is never used after it, whether the reader keeps polling or its reads hang", async () => {
    for (const readerHangs of [false, true]) {
      const clock = new FakeClock();
      const { driver, gates } = storeWithGates();
      const barrier = new CollectionBarrier(driver, { fence: T, clock });
      const cache = new DescriptorCache(100, barrier.caches);
      await clock.advance(T.quietMs + 2 * T.pollMs);
      const snapshot = cache.snapshot();
      expect(snapshot).toBeDefined();
      cache.remember("blob", 42, snapshot);
      expect(cache.get("blob")).toBe(42);

      const hung = gate();
      if (readerHangs) gates.reads = hung.closed;
      const fence = new RemovalFence(driver, T, () => undefined, clock);
      let removed = false;
      const removal = fence.remove(async () => {
        removed = true;
      });
      // Until the removal the cache may still answer; from the removal on, never.
      for (let t = 0; t < 20_000; t += 100) {
        await clock.advance(100);
        if (removed) expect(cache.get("blob")).toBeUndefined();
      }
      expect(removed).toBe(true);
      await removal;
      hung.open();
      await barrier.close();
    }
  });

  it("a heartbeat that stalls breaks the fence: the next removal waits a whole notice again", async () => {
    const clock = new FakeClock();
    const { driver, gates } = storeWithGates();
    const fence = new RemovalFence(driver, T, () => undefined, clock);
    const release = fence.hold();
    await clock.advance(T.noticeMs + 100);
    let at: number | undefined;
    await Promise.all([fence.remove(async () => (at = clock.now())), clock.advance(100)]);
    expect(at).toBeDefined();
    const before = fence.notices;
    // The store stops taking the epoch for longer than maxGapMs, then takes it again.
    const hung = gate();
    gates.writes = hung.closed;
    await clock.advance(T.maxGapMs + 1000);
    expect(fence.notices).toBe(before);
    hung.open();
    const resumed = clock.now();
    let next: number | undefined;
    const removal = fence.remove(async () => (next = clock.now()));
    await clock.advance(T.noticeMs + 2000);
    await removal;
    expect(next! - resumed).toBeGreaterThanOrEqual(T.noticeMs);
    // A new notice: what a remover read under the old one is no longer to be relied on.
    expect(fence.notices).toBeGreaterThan(before);
    release();
  });

  it("a removal that outlasts a stalled heartbeat is reported, and the next one waits a whole notice", async () => {
    const clock = new FakeClock();
    const { driver, gates } = storeWithGates();
    const warnings: string[] = [];
    const fence = new RemovalFence(driver, T, (message) => warnings.push(message), clock);
    const slow = gate();
    const removal = fence.remove(() => slow.closed);
    await clock.advance(T.noticeMs + 100);
    // The removal is under way; the epoch stops being taken, for longer than maxGapMs.
    const hung = gate();
    gates.writes = hung.closed;
    await clock.advance(T.maxGapMs + 1000);
    slow.open();
    await removal;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/outlasted the removal fence's heartbeat/);
    hung.open();
    const resumed = clock.now();
    let next: number | undefined;
    const again = fence.remove(async () => (next = clock.now()));
    await clock.advance(T.noticeMs + 2000);
    await again;
    expect(next! - resumed).toBeGreaterThanOrEqual(T.noticeMs);
  });

  it("a remover whose store refuses the epoch removes nothing and says the store is unavailable", async () => {
    const clock = new FakeClock();
    const { driver, gates } = storeWithGates();
    gates.failWrites = true;
    const fence = new RemovalFence(driver, T, () => undefined, clock);
    let removed = false;
    const removal = fence.remove(async () => (removed = true)).catch((err: unknown) => err);
    await clock.advance(31_000);
    expect(await removal).toBeInstanceOf(StorageUnavailableError);
    expect(removed).toBe(false);
  });

  it("settles once the rewrite under way at its release has landed: nothing writes to the store after", async () => {
    const clock = new FakeClock();
    const { driver, gates } = storeWithGates();
    const fence = new RemovalFence(driver, T, () => undefined, clock);
    const hung = gate();
    gates.writes = hung.closed;
    fence.hold()();
    let settled = false;
    const settling = fence.settled().then(() => (settled = true));
    await clock.advance(T.heartbeatMs);
    expect(settled).toBe(false);
    hung.open();
    await settling;
    const landed = await driver.getContent(gcPaths.removalEpoch);
    await clock.advance(10 * T.heartbeatMs);
    expect(await driver.getContent(gcPaths.removalEpoch)).toEqual(landed);
  });
});
