import { AsyncLocalStorage } from "node:async_hooks";
import { CollectionBarrier } from "../../src/gc/barrier.js";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { collectGarbage, type CollectReport } from "../../src/gc/collect.js";
import { readMarks, type GuardTiming } from "../../src/gc/collection-guard.js";
import { digestOf, type Digest } from "../../src/registry/digest.js";
import { RegistryError } from "../../src/registry/errors.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
import type { FenceTiming } from "../../src/gc/removal-fence.js";
import { Registry } from "../../src/registry/registry.js";
import { exists, type StorageDriver } from "../../src/storage/driver.js";
import { FilesystemDriver } from "../../src/storage/filesystem.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { layout } from "../../src/registry/layout.js";
import { gcPaths } from "../../src/gc/paths.js";
import { FakeClock } from "../helpers/fake-clock.js";
import { bodyOf } from "../helpers/store.js";

// A rewrite of the epoch that takes maxGapMs breaks the fence, and a collection then marks again:
// roomy, for a loaded machine. quietMs - maxGapMs: how late a removal may land after its last check.
const FENCE: FenceTiming = { pollMs: 5, freshMs: 15, quietMs: 300, noticeMs: 20, heartbeatMs: 5, maxGapMs: 250 };
const GUARD: GuardTiming = { claimWaitMs: 5_000, claimPollMs: 1, claimBoundMs: 5_000 };
const OLD = "lain/old" as RepositoryName;
const NEW = "lain/new" as RepositoryName;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
/** Schedules per writer; GUARD_SEEDS=1000 runs many more (each is reproducible by its number). */
const SEEDS = Number(process.env.GUARD_SEEDS ?? 20);
/** About how many store calls a collection of this tiny store makes. */
const COLLECTOR_CALLS = 24;
/** Its first calls write and read back its start on the store's clock: writers start after that. */
const STAMP_CALLS = 2;

type Party = "collector" | "writer";
const party = new AsyncLocalStorage<Party>();

/** A tiny xorshift generator: each seed is one reproducible schedule. */
function random(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Lets the collector's and the writer's store calls through one at a time, in an order the seed
 * picks among those waiting: every interleaving of the two protocols at store-call granularity
 * is reachable. The removal fence's own reads and writes of the epoch pass freely (they run on
 * timers of both processes). Time is the schedule's too: it moves, to the next sleeper's due
 * time, only when no store call is waiting, so no timing of the machine decides an outcome.
 */
class Schedule {
  /** Calls waiting for their turn, by party (a party may make several at once). */
  private readonly waiting = new Map<Party, Array<{ path: string; go: () => void }>>();
  private running = true;
  /** Time goes on after the collection (the writer may still wait on it) until the run is over. */
  private disposed = false;
  /** Calls the collector has made so far, and who waits for a number of them. */
  private collectorCalls = 0;
  /** The number of the collector's call that put its first tombstone. */
  tombstoneCall: number | undefined;
  private readonly watchers: Array<{ calls: number; go: () => void }> = [];
  /** Store calls let through and not yet answered (the fence's included): time stands still meanwhile. */
  inFlight = 0;

  constructor(
    private readonly next: () => number,
    private readonly clock: FakeClock,
  ) {
    void this.loop();
  }

  turn(who: Party, path: string): Promise<void> {
    // Once the collection is over, the writer runs alone.
    if (!this.running) return Promise.resolve();
    return new Promise((go) => this.waiting.set(who, [...(this.waiting.get(who) ?? []), { path, go }]));
  }

  /** Resolves once the collector has made `calls` store calls (or is done). */
  afterCollectorCalls(calls: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((go) => this.watchers.push({ calls, go }));
  }

  /** The collection is over: the writer's calls pass at once from now on. */
  stop(): void {
    for (const watcher of this.watchers) watcher.go();
    this.running = false;
    for (const calls of this.waiting.values()) for (const { go } of calls) go();
    this.waiting.clear();
  }

  dispose(): void {
    this.stop();
    this.disposed = true;
  }

  private async loop(): Promise<void> {
    while (!this.disposed) {
      // Whoever is between two calls gets there first.
      for (let i = 0; i < 4; i++) await settle();
      const ready = [...this.waiting.entries()].filter(([, calls]) => calls.length > 0);
      if (ready.length === 0) {
        // Nothing waits for the store and nothing is under way in it: time passes.
        if (this.inFlight > 0 || !this.clock.wakeNext()) await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      const [who, calls] = ready[Math.floor(this.next() * ready.length)]!;
      const { path, go } = calls.shift()!;
      go();
      if (who !== "collector") continue;
      this.collectorCalls++;
      if (path.includes("/tombstone-")) this.tombstoneCall ??= this.collectorCalls;
      for (const watcher of this.watchers.filter((w) => w.calls <= this.collectorCalls)) {
        this.watchers.splice(this.watchers.indexOf(watcher), 1);
        watcher.go();
      }
    }
  }
}

function scheduled(inner: StorageDriver, schedule: Schedule): StorageDriver {
  const gated = <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const who = party.getStore();
      if (who && args[0] !== gcPaths.removalEpoch) await schedule.turn(who, String(args[0]));
      schedule.inFlight++;
      try {
        return await call(...args);
      } finally {
        schedule.inFlight--;
      }
    };
  return {
    name: inner.name,
    getContent: gated((path: string) => inner.getContent(path)),
    putContent: gated((path: string, content: Buffer) => inner.putContent(path, content)),
    reader: gated((path: string, offset?: number, end?: number) => inner.reader(path, offset, end)),
    writer: gated((path: string, append: boolean) => inner.writer(path, append)),
    stat: gated((path: string) => inner.stat(path)),
    list: gated((path: string) => inner.list(path)),
    walk: gated((path: string) => inner.walk(path)),
    move: gated((source: string, destination: string) => inner.move(source, destination)),
    delete: gated((path: string) => inner.delete(path)),
    deleteObjects: gated((paths: string[]) => inner.deleteObjects(paths)),
  };
}

interface Blob {
  digest: Digest;
  content: Buffer;
}

function blob(content: Buffer): Blob {
  return { digest: digestOf(content, "sha256"), content };
}

function manifestNaming(config: Blob, layer: Blob): Blob {
  const descriptor = (b: Blob, mediaType: string) => ({ mediaType, digest: b.digest, size: b.content.length });
  return blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: descriptor(config, "application/vnd.oci.image.config.v1+json"),
        layers: [descriptor(layer, "application/vnd.oci.image.layer.v1.tar+gzip")],
      }),
    ),
  );
}

/** Stores a blob as a push does (an upload's commit) and links it into the repository. */
async function push(registry: Registry, name: RepositoryName, item: Blob): Promise<void> {
  const { id } = await registry.uploads.create(name);
  await registry.uploads.complete(registry.repository(name).blobs, id, item.digest, bodyOf(Readable.from([item.content])));
}

/** Makes the blob's data and its link into the repository look written `ms` ago. */
async function age(root: string, name: RepositoryName, digest: Digest, ms: number): Promise<void> {
  const then = new Date(Date.now() - ms);
  for (const path of [layout.blobData(digest), layout.layerLink(name, digest)]) await utimes(join(root, path), then, then);
}

const AN_HOUR = 3_600_000;

/** A filesystem store holding one blob of lain/old that no manifest names, pushed `ms` ago. */
async function storeWithGarbage(ms: number): Promise<{ root: string; inner: FilesystemDriver; garbage: Blob }> {
  const root = await mkdtemp(join(tmpdir(), "lain-guard-"));
  const inner = new FilesystemDriver(root);
  const setup = new Registry(inner);
  const garbage = blob(randomBytes(64));
  await push(setup, OLD, garbage);
  await setup.close();
  await age(root, OLD, garbage.digest, ms);
  return { root, inner, garbage };
}

/** What a writer does with the old garbage blob D while a collection runs; true when it was acknowledged. */
type Writer = (registry: Registry, garbage: Blob, config: Blob) => Promise<boolean>;

const refusedForGc = (err: unknown) => err instanceof RegistryError && (err.code === "MANIFEST_BLOB_UNKNOWN" || err.code === "UNAVAILABLE");

const WRITERS: Record<string, Writer> = {
  "a manifest put naming it": async (registry, garbage, config) => {
    try {
      const manifest = manifestNaming(config, garbage);
      await registry.repository(OLD).manifests.put("v1" as Tag, manifest.content, OCI_MANIFEST);
      return true;
    } catch (err) {
      if (refusedForGc(err)) return false;
      throw err;
    }
  },
  "a mount of it": async (registry, garbage) => (await registry.repository(NEW).blobs.mount(registry.repository(OLD).blobs, garbage.digest)) !== undefined,
  "an upload of it": async (registry, garbage) => {
    try {
      await push(registry, NEW, garbage);
      return true;
    } catch (err) {
      if (refusedForGc(err)) return false;
      throw err;
    }
  },
  "a HEAD, then the manifest put it lets the client make": async (registry, garbage, config) => {
    if (!(await registry.repository(OLD).statBlob(garbage.digest, true))) return false;
    // Told the blob is there, the client skips its upload: the put must not be refused now.
    const manifest = manifestNaming(config, garbage);
    await registry.repository(OLD).manifests.put("v1" as Tag, manifest.content, OCI_MANIFEST);
    return true;
  },
};

/**
 * One run: a store holding an old unreferenced blob (garbage) and a tagged image whose config a
 * writer's manifest may name; a collection with no delay and a writer that starts using the
 * garbage after the collection started, their store calls interleaved as the seed says. The
 * writer starts after the collector's `startAfter`-th store call.
 */
async function interleave(
  seed: number,
  write: Writer,
  startAfter: number,
): Promise<{ acknowledged: boolean; present: boolean; report: CollectReport; tombstoneCall: number | undefined }> {
  // Pushed an hour ago: a HEAD renews its link (one of a second would count from its push).
  const { root, inner, garbage } = await storeWithGarbage(AN_HOUR);
  const config = blob(Buffer.from(`{"architecture":"amd64","os":"linux","seed":${seed}}`));
  const base = blob(randomBytes(64));
  const setup = new Registry(inner);
  for (const item of [config, base]) await push(setup, OLD, item);
  // The config stays whatever happens: a tagged manifest names it.
  await setup.repository(OLD).manifests.put("base" as Tag, manifestNaming(config, base).content, OCI_MANIFEST);
  await setup.close();
  const clock = new FakeClock();
  const schedule = new Schedule(random(seed * 7919), clock);
  const driver = scheduled(inner, schedule);
  // The production timing, on the schedule's time: the writer's process and the collector's.
  const registry = new Registry(driver, { barrier: new CollectionBarrier(driver, { clock }) });
  try {
    const collecting = party.run("collector", () => collectGarbage(driver, { dryRun: false, deleteUntagged: false, delayMs: 0 }, new CollectionBarrier(driver, { clock })));
    void collecting.finally(() => schedule.stop());
    const writing = schedule.afterCollectorCalls(startAfter).then(() => party.run("writer", () => write(registry, garbage, config)));
    const [report, acknowledged] = await Promise.all([collecting, writing]);
    return { acknowledged, present: await exists(inner, layout.blobData(garbage.digest)), report, tombstoneCall: schedule.tombstoneCall };
  } finally {
    schedule.stop();
    await registry.close();
    schedule.dispose();
    await rm(root, { recursive: true, force: true });
  }
}

describe("collection guard: a collection and a writer, every interleaving of their store calls", () => {
  for (const [name, write] of Object.entries(WRITERS)) {
    it(`${name}: acknowledged means the blob is kept; it is removed only when the writer was told it is gone`, async () => {
      const outcomes = new Set<string>();
      // Every seed checks safety; reaching the narrow race may take more of them (at most five times as many).
      const raced = () => outcomes.has("acknowledged kept rescued");
      let tombstoneAt: number | undefined;
      for (let seed = 1; seed <= SEEDS || (!raced() && seed <= SEEDS * 5); seed++) {
        // The writer starts anywhere in the collection (before its first mark, during its notice,
        // among its decisions), and on even seeds within a dozen calls before the collection puts
        // its tombstone (as the first seed counted them), where the narrow race is.
        const pick = random(seed * 7919 + 1)();
        const startAfter = Math.max(STAMP_CALLS, seed % 2 === 0 && tombstoneAt !== undefined ? tombstoneAt - 12 + Math.floor(pick * 15) : STAMP_CALLS + Math.floor(pick * COLLECTOR_CALLS));
        const { acknowledged, present, report, tombstoneCall } = await interleave(seed, write, startAfter);
        tombstoneAt ??= tombstoneCall;
        if (acknowledged) expect(present, `seed ${seed}`).toBe(true);
        if (!present) expect(report.blobsDeleted).toHaveLength(1);
        outcomes.add(`${acknowledged ? "acknowledged" : "refused"} ${present ? "kept" : "removed"}${report.blobsRescued > 0 ? " rescued" : ""}`);
      }
      // The schedules reach the race: the writer came while the collection decided, and rescued the blob.
      expect([...outcomes], [...outcomes].join("; ")).toContain("acknowledged kept rescued");
    }, 120_000);
  }
});

describe("collection guard: what dead processes leave", () => {
  it("a writer waits for a dead collector's claim only claimWaitMs, then goes on", async () => {
    const driver = new InMemoryDriver();
    const registry = new Registry(driver, { barrier: new CollectionBarrier(driver, { fence: FENCE, guard: { ...GUARD, claimWaitMs: 100 } }) });
    try {
      const garbage = blob(randomBytes(64));
      await push(registry, OLD, garbage);
      const claim = gcPaths.mark(garbage.digest, "claim", "dead-run");
      await driver.putContent(claim, Buffer.from("2026-01-01T00:00:00Z"));
      expect(await registry.repository(NEW).blobs.mount(registry.repository(OLD).blobs, garbage.digest)).toBeDefined();
      // Only collectors remove claims (a later one, once it is an hour old).
      expect(await exists(driver, claim)).toBe(true);
    } finally {
      await registry.close();
    }
  });

  it("a collection removes tombstones, claims, writers' marks and runs' starts older than an hour, and nothing younger", async () => {
    const root = await mkdtemp(join(tmpdir(), "lain-guard-"));
    const driver = new FilesystemDriver(root);
    const registry = new Registry(driver, { barrier: new CollectionBarrier(driver, { fence: FENCE, guard: GUARD }) });
    try {
      const garbage = blob(randomBytes(64));
      await push(registry, OLD, garbage);
      await age(root, OLD, garbage.digest, AN_HOUR);
      const someone = blob(randomBytes(64)).digest;
      const old = [gcPaths.mark(someone, "claim", "dead-run"), gcPaths.run("dead-run")];
      const young = [gcPaths.mark(someone, "writer", "live-writer"), gcPaths.run("live-run")];
      for (const path of [...old, ...young]) await driver.putContent(path, Buffer.from(""));
      const twoHoursAgo = new Date(Date.now() - 2 * AN_HOUR);
      for (const path of old) await utimes(join(root, path), twoHoursAgo, twoHoursAgo);
      const report = await collectGarbage(driver, { dryRun: false, deleteUntagged: false, delayMs: 0 }, new CollectionBarrier(driver, { fence: FENCE, guard: GUARD }));
      expect(report.blobsDeleted).toEqual([garbage.digest]);
      for (const path of old) expect(await exists(driver, path), path).toBe(false);
      for (const path of young) expect(await exists(driver, path), path).toBe(true);
      // The run's own marks are gone with their directories, and its start with it.
      expect(await exists(driver, gcPaths.marks(garbage.digest))).toBe(false);
      expect(await driver.list(gcPaths.runsRoot)).toEqual([gcPaths.run("live-run")]);
    } finally {
      await registry.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("collection guard: the collector's checks", () => {
  it("spares a candidate whose data a writer is moving into place (its mark stands), and removes it once the mark is gone", async () => {
    const root = await mkdtemp(join(tmpdir(), "lain-guard-"));
    const driver = new FilesystemDriver(root);
    const registry = new Registry(driver, { barrier: new CollectionBarrier(driver, { fence: FENCE, guard: GUARD }) });
    try {
      const garbage = blob(randomBytes(64));
      await push(registry, OLD, garbage);
      await age(root, OLD, garbage.digest, AN_HOUR);
      const mark = gcPaths.mark(garbage.digest, "writer", "an-upload");
      await driver.putContent(mark, Buffer.from(""));
      const options = { dryRun: false, deleteUntagged: false, delayMs: 0, fence: FENCE, guard: GUARD };
      const spared = await collectGarbage(driver, options);
      expect(spared).toMatchObject({ blobsDeleted: [], blobsRescued: 1 });
      expect(await exists(driver, layout.blobData(garbage.digest))).toBe(true);
      await driver.delete(mark);
      const removed = await collectGarbage(driver, options);
      expect(removed.blobsDeleted).toEqual([garbage.digest]);
    } finally {
      await registry.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it("leaves a candidate whose removal would come past the claim's bound (a writer may have stopped waiting)", async () => {
    const { root, inner, garbage } = await storeWithGarbage(AN_HOUR);
    const guard = { ...GUARD, claimBoundMs: 200 };
    // After the claim, the store takes twice the bound to say how old the blob is.
    let claimed = false;
    const driver: StorageDriver = Object.assign(Object.create(inner) as FilesystemDriver, {
      putContent: (path: string, content: Buffer, transient?: boolean) => {
        claimed ||= path.includes("/claim-");
        return inner.putContent(path, content, transient);
      },
      stat: async (path: string) => {
        if (claimed && path === layout.blobData(garbage.digest)) await new Promise((r) => setTimeout(r, 2 * guard.claimBoundMs));
        return inner.stat(path);
      },
    });
    try {
      const report = await collectGarbage(driver, { dryRun: false, deleteUntagged: false, delayMs: 0 }, new CollectionBarrier(driver, { fence: FENCE, guard }));
      expect(claimed).toBe(true);
      expect(report).toMatchObject({ blobsDeleted: [], blobsSpared: 1, blobsRescued: 0 });
      expect(await exists(inner, layout.blobData(garbage.digest))).toBe(true);
      // Nothing holds it up the next time.
      const again = await collectGarbage(inner, { dryRun: false, deleteUntagged: false, delayMs: 0 }, new CollectionBarrier(inner, { fence: FENCE, guard }));
      expect(again.blobsDeleted).toEqual([garbage.digest]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("decides again, against a new mark, once its fence broke: a writer that saw the fence quiet meanwhile took no part in the protocol", async () => {
    const { root, inner, garbage } = await storeWithGarbage(AN_HOUR);
    const other = blob(randomBytes(64));
    const setup = new Registry(inner);
    await push(setup, OLD, other);
    await setup.close();
    await age(root, OLD, other.digest, AN_HOUR);
    // A notice long enough for the writer's whole mount to count as quiet.
    const fence: FenceTiming = { ...FENCE, freshMs: 50, noticeMs: 400 };
    // The collector's store: at its claims it stops, and so do its epoch rewrites.
    let reachClaim = () => {};
    const atClaim = new Promise<void>((resolve) => (reachClaim = resolve));
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let stalled = false;
    const collector: StorageDriver = Object.assign(Object.create(inner) as FilesystemDriver, {
      putContent: async (path: string, content: Buffer, transient?: boolean) => {
        if (path.includes("/claim-")) {
          stalled = true;
          reachClaim();
          await released;
        }
        if (path === gcPaths.removalEpoch && stalled) await released;
        return inner.putContent(path, content, transient);
      },
    });
    const writer = new Registry(inner, { barrier: new CollectionBarrier(inner, { fence, guard: GUARD }) });
    try {
      const collecting = collectGarbage(collector, { dryRun: false, deleteUntagged: false, delayMs: 0 }, new CollectionBarrier(collector, { fence, guard: GUARD }));
      collecting.catch(() => undefined);
      await atClaim;
      // With no rewrite for quietMs, the writer's watch sees the fence quiet: a collection that
      // stalled looks like none.
      for (let i = 0; i < 400 && writer.blobs.barrier.begin().taken === undefined; i++) await new Promise((r) => setTimeout(r, 5));
      const mounted = await writer.repository(NEW).blobs.mount(writer.repository(OLD).blobs, garbage.digest);
      expect(mounted).toBeDefined();
      // It took the quiet path: no rescue, the tombstone stands, its link came after the second mark.
      expect((await readMarks(inner, garbage.digest)).tombstone).toHaveLength(1);
      release();
      const report = await collecting;
      // The new mark sees the mount's link; the other candidate still goes.
      expect(report.blobsDeleted).toEqual([other.digest]);
      expect(await exists(inner, layout.blobData(garbage.digest))).toBe(true);
    } finally {
      release();
      await writer.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  /**
   * A store whose clock runs `behindMs` behind this host's and stamps whole seconds (as S3's
   * HEAD answers), that runs `during` once the collection starts listing blobs.
   */
  function storeOwnClock(inner: StorageDriver, behindMs: number, during: () => Promise<void>): StorageDriver {
    const stamp = (modTime: Date) => new Date(Math.floor((modTime.getTime() - behindMs) / 1000) * 1000);
    let ran = false;
    return {
      name: inner.name,
      getContent: (path) => inner.getContent(path),
      putContent: (path, content, transient) => inner.putContent(path, content, transient),
      reader: (path, offset, end) => inner.reader(path, offset, end),
      writer: (path, append) => inner.writer(path, append),
      move: (source, destination) => inner.move(source, destination),
      delete: (path) => inner.delete(path),
      deleteObjects: (paths) => inner.deleteObjects(paths),
      removeEmptyDir: (path) => inner.removeEmptyDir?.(path) ?? Promise.resolve(),
      stat: async (path) => {
        const info = await inner.stat(path);
        return { ...info, modTime: stamp(info.modTime) };
      },
      walk: async (path) => (await inner.walk(path)).map((info) => ({ ...info, modTime: stamp(info.modTime) })),
      list: async (path) => {
        if (path === layout.blobsRoot && !ran) {
          ran = true;
          await during();
        }
        return inner.list(path);
      },
    };
  }

  for (const { behindMs, delayMs } of [
    { behindMs: 10 * 60_000, delayMs: 60_000 },
    { behindMs: 0, delayMs: 0 },
  ]) {
    it(`keeps a blob mounted while it collects, with a store whose clock is ${behindMs / 60_000} min behind and counts seconds (delay ${delayMs / 1000} s)`, async () => {
      const { root, inner, garbage } = await storeWithGarbage(2 * AN_HOUR);
      let mounted: unknown;
      const driver = storeOwnClock(inner, behindMs, async () => {
        mounted = await registry.repository(NEW).blobs.mount(registry.repository(OLD).blobs, garbage.digest);
      });
      const registry = new Registry(driver, { barrier: new CollectionBarrier(driver, { fence: FENCE, guard: GUARD }) });
      try {
        const report = await collectGarbage(driver, { dryRun: false, deleteUntagged: false, delayMs }, new CollectionBarrier(driver, { fence: FENCE, guard: GUARD }));
        // Written after the collection started, the mount's link is young on the store's clock, whatever this host's says.
        expect(mounted).toBeDefined();
        expect(report.blobsDeleted).toEqual([]);
        expect(await exists(inner, layout.blobData(garbage.digest))).toBe(true);
      } finally {
        await registry.close();
        await rm(root, { recursive: true, force: true });
      }
    });
  }
});
