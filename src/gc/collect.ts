import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { listRepositories } from "../registry/catalog.js";
import { isDigest, parseDigest, type Digest } from "../registry/digest.js";
import type { RepositoryName } from "../registry/names.js";
import { Registry } from "../registry/registry.js";
import { readLink } from "../registry/blobs.js";
import { deleteIfPresent, listIfPresent, unlessMissing, type FileInfo, type StorageDriver } from "../storage/driver.js";
import { layout } from "../registry/layout.js";
import { CollectionBarrier } from "./barrier.js";
import { readMarks } from "./collection-guard.js";
import { gcPaths } from "./paths.js";
import { forEachLimit } from "./limit.js";
import { repeat } from "./repeat.js";

export interface CollectOptions {
  /** Report what would go; change nothing. */
  dryRun: boolean;
  /** Also delete manifests no tag reaches (never an index's children or a kept manifest's referrers). */
  deleteUntagged: boolean;
  /** Blobs and links younger than this are never swept: pushes in progress are safe. */
  delayMs: number;
  progress?: (phase: string, counts: Record<string, number>) => void;
}

export interface CollectReport {
  repositories: number;
  manifests: number;
  blobsKept: number;
  /** Of the blobs kept, those no manifest references but younger than the delay spared. */
  blobsSpared: number;
  /** Of those spared, the ones a push, mount or HEAD started using while this collection decided on them. */
  blobsRescued: number;
  blobsDeleted: Digest[];
  bytesFreed: number;
  /** name@digest of the untagged manifests deleted. */
  manifestsDeleted: string[];
}

/** Repositories marked, and blob prefixes swept, at once: enough to keep a store busy, never unbounded. */
const CONCURRENCY = 16;

interface ManifestRefs {
  blobs: Digest[];
  children: Digest[];
  subject: Digest | undefined;
}

function digestsOf(values: unknown, field = "digest"): Digest[] {
  if (!Array.isArray(values)) return [];
  return values.map((v) => (v as Record<string, unknown> | null)?.[field]).filter((d): d is Digest => typeof d === "string" && isDigest(d));
}

/** What a manifest references, read leniently: a sweep (or a retention plan) must handle even what a push would refuse. */
export function refsOf(content: Buffer): ManifestRefs {
  try {
    const json = JSON.parse(content.toString("utf8")) as Record<string, unknown>;
    const config = digestsOf([json.config]);
    const subject = digestsOf([json.subject])[0];
    // Schema 1 (fsLayers[].blobSum) is refused on push but may sit in an old store.
    return { blobs: [...config, ...digestsOf(json.layers), ...digestsOf(json.fsLayers, "blobSum")], children: digestsOf(json.manifests), subject };
  } catch {
    return { blobs: [], children: [], subject: undefined };
  }
}

/** The links below `dir/<algorithm>/<hex>/link` (revisions, layers) and when each was written: one walk. */
export async function linksBelow(driver: StorageDriver, dir: string): Promise<Array<{ digest: Digest; written: number }>> {
  const out: Array<{ digest: Digest; written: number }> = [];
  for (const file of await driver.walk(dir)) {
    const [algorithm, hex, name, ...deeper] = file.path.slice(dir.length + 1).split("/");
    if (name !== "link" || deeper.length > 0) continue;
    const parsed = parseDigest(`${algorithm}:${hex}`);
    if (parsed.ok) out.push({ digest: parsed.digest, written: file.modTime.getTime() });
  }
  return out;
}

/**
 * Marks what the store must keep: every blob a linked manifest references (config, layers, an
 * index's children), the manifests themselves, and blobs linked into a repository within the
 * delay (a push or mount whose manifest has not arrived yet). With deleteUntagged, only
 * manifests reachable from a tag (through indexes) and, transitively, their referrers are kept.
 */
async function mark(
  registry: Registry,
  options: CollectOptions,
  cutoff: number,
  report: CollectReport,
  /** What an earlier mark read: manifests are immutable, so only new revisions are read again. */
  known = new Map<string, Map<Digest, ManifestRefs>>(),
): Promise<Marked & { untagged: Array<{ name: RepositoryName; digest: Digest }>; read: Map<string, Map<Digest, ManifestRefs>> }> {
  const driver = registry.driver;
  const keep = new Set<Digest>();
  /** Kept only because a repository linked them within the delay. */
  const young = new Set<Digest>();
  const untagged: Array<{ name: RepositoryName; digest: Digest }> = [];
  const read = new Map<string, Map<Digest, ManifestRefs>>();
  const { repositories } = await listRepositories(driver, Number.MAX_SAFE_INTEGER);
  report.repositories = repositories.length;
  report.manifests = 0;
  await forEachLimit(repositories, CONCURRENCY, async (name) => {
    const repo = registry.repository(name);
    // A deleted manifest may leave its directory behind (distribution removes only the link).
    // One that an earlier mark saw linked is kept without asking again (at worst for one more run).
    const earlier = known.get(name);
    const [listed, layers] = await Promise.all([
      linksBelow(driver, layout.revisionsDir(name)).then((links) => links.map((l) => l.digest)),
      linksBelow(driver, layout.layersDir(name)),
    ]);
    const fresh = listed.filter((d) => !earlier?.has(d));
    const linked = await Promise.all(fresh.map((d) => readLink(driver, layout.revisionLink(name, d))));
    const revisions = [...listed.filter((d) => earlier?.has(d)), ...fresh.filter((d, i) => linked[i] === d)];
    const refs = new Map<Digest, ManifestRefs>();
    for (const digest of revisions) {
      const seen = earlier?.get(digest);
      if (seen) refs.set(digest, seen);
    }
    const unread = revisions.filter((d) => !refs.has(d));
    const contents = await Promise.all(unread.map((d) => registry.blobs.getContent(d)));
    unread.forEach((digest, i) => {
      const content = contents[i];
      if (content) refs.set(digest, refsOf(content));
    });
    read.set(name, refs);
    report.manifests += revisions.length;
    let kept: Set<Digest>;
    if (!options.deleteUntagged) kept = new Set(revisions);
    else {
      const tags = (await repo.tags.list()) ?? [];
      const roots = (await Promise.all(tags.map((t) => repo.tags.resolve(t)))).filter((d): d is Digest => d !== undefined);
      kept = closure(roots, refs);
      for (const digest of revisions) if (!kept.has(digest)) untagged.push({ name, digest });
    }
    for (const digest of kept) {
      keep.add(digest);
      for (const blob of refs.get(digest)?.blobs ?? []) keep.add(blob);
    }
    for (const { digest, written } of layers) if (!keep.has(digest) && isYoung(written, cutoff)) young.add(digest);
    options.progress?.("mark", { repositories: report.repositories, manifests: report.manifests, marked: keep.size });
  });
  const spared = new Set([...young].filter((d) => !keep.has(d)));
  for (const digest of spared) keep.add(digest);
  return { keep, spared, untagged, read };
}

/** Tagged manifests, their children (through nested indexes), and referrers of anything kept. */
function closure(roots: Digest[], refs: Map<Digest, ManifestRefs>): Set<Digest> {
  const kept = new Set<Digest>();
  const visit = (digest: Digest) => {
    if (kept.has(digest)) return;
    kept.add(digest);
    for (const child of refs.get(digest)?.children ?? []) visit(child);
  };
  roots.forEach(visit);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [digest, r] of refs) {
      if (!kept.has(digest) && r.subject && kept.has(r.subject)) {
        visit(digest);
        grew = true;
      }
    }
  }
  return kept;
}

/** The blob digests in the store, by two-hex-digit prefix directory. */
async function blobPrefixes(driver: StorageDriver): Promise<Array<() => Promise<Digest[]>>> {
  const out: Array<() => Promise<Digest[]>> = [];
  for (const algorithmDir of (await unlessMissing(() => driver.list(layout.blobsRoot))) ?? []) {
    const algorithm = algorithmDir.slice(algorithmDir.lastIndexOf("/") + 1);
    for (const prefix of (await unlessMissing(() => driver.list(algorithmDir))) ?? []) {
      out.push(async () =>
        ((await unlessMissing(() => driver.list(prefix))) ?? []).flatMap((entry) => {
          const parsed = parseDigest(`${algorithm}:${entry.slice(entry.lastIndexOf("/") + 1)}`);
          return parsed.ok ? [parsed.digest] : [];
        }),
      );
    }
  }
  return out;
}

/**
 * distribution's garbage collection on the same layout, safe while registries serve and push:
 * mark, list the blobs the mark did not keep (giving the removal fence's notice from the first
 * one on: descriptor caches stop vouching, writers stop taking the quiet path); if there are
 * any, put a tombstone on each, mark again, and decide on each candidate still unmarked under
 * a claim (docs/design/gc-safety.md): nothing is refused meanwhile.
 */
export async function collectGarbage(driver: StorageDriver, options: CollectOptions, barrier = new CollectionBarrier(driver)): Promise<CollectReport> {
  const registry = new Registry(driver, { barrier });
  const run = randomUUID();
  try {
    // A dry run writes nothing: the local clock serves, as nothing rests on it.
    const started = options.dryRun ? Date.now() : await startOnStoreClock(driver, run);
    return await collect(registry, barrier, options, started, run);
  } finally {
    if (!options.dryRun) await deleteIfPresent(driver, gcPaths.run(run)).catch(() => undefined);
    await registry.close();
  }
}

/**
 * When the collection starts, as the store stamps what is written to it: ages are compared on
 * that one clock, so a link written after this instant is never older than the cutoff, however
 * far this host's clock is from the store's and however coarse the store's timestamps (a
 * second on S3 and OSS, a kernel tick on a filesystem). Read back with stat, the coarsest way
 * the collection reads a time.
 */
async function startOnStoreClock(driver: StorageDriver, run: string): Promise<number> {
  await driver.putContent(gcPaths.run(run), Buffer.from(""), true);
  return (await driver.stat(gcPaths.run(run))).modTime.getTime();
}

/**
 * Whether something the store stamped at `written` is younger than the cutoff. A stamp equal to
 * it is young: the store's clock may not have ticked between the collection's start and a
 * write that came after it.
 */
function isYoung(written: number, cutoff: number): boolean {
  return written >= cutoff;
}

async function collect(registry: Registry, barrier: CollectionBarrier, options: CollectOptions, started: number, run: string): Promise<CollectReport> {
  const report: CollectReport = { repositories: 0, manifests: 0, blobsKept: 0, blobsSpared: 0, blobsRescued: 0, blobsDeleted: [], bytesFreed: 0, manifestsDeleted: [] };
  const cutoff = started - options.delayMs;
  // Announced when the first candidate old enough to go turns up: its notice runs out while the
  // rest is listed, and a run that finds nothing to remove never disturbs a descriptor cache.
  let releaseFence: (() => void) | undefined;
  const announce = options.dryRun ? () => undefined : () => void (releaseFence ??= barrier.fence.hold());
  try {
    const { unreferenced, untagged, read } = await firstLook(registry, options, cutoff, report, announce);
    if (options.dryRun) {
      // The candidates are what the mark did not keep: the sweep only looks at their age.
      const unmarked = { keep: new Set<Digest>(), spared: new Set<Digest>() };
      await sweep(registry, barrier, unreferenced, () => Promise.resolve({ marked: unmarked, stands: () => true }), cutoff, undefined, report, options);
      report.manifestsDeleted = untagged.map((u) => `${u.name}@${u.digest}`);
      return report;
    }
    for (const { name, digest } of untagged) {
      if ((await registry.repository(name).manifests.delete(digest)) || (await deleteIfPresent(registry.driver, layout.revisionDir(name, digest)))) {
        report.manifestsDeleted.push(`${name}@${digest}`);
      }
    }
    // Nothing old enough to sweep: no tombstone, no second mark.
    if (releaseFence === undefined) return report;
    // Writers on the quiet path finish within the notice: the tombstones come after it.
    await barrier.fence.ready();
    await removeLeftovers(registry.driver, started);
    try {
      await forEachLimit(unreferenced, CONCURRENCY, (digest) => registry.driver.putContent(tombstone(digest, run), Buffer.from(""), true));
      const basis = await markUnderNotice(registry, barrier, options, cutoff, report, read);
      await sweep(registry, barrier, unreferenced, basis, cutoff, run, report, options);
    } catch (err) {
      // A run that fails removes its marks (each decision removes its own as it goes).
      await forgetCandidates(registry.driver, unreferenced, run).catch(() => undefined);
      throw err;
    }
    return report;
  } finally {
    releaseFence?.();
  }
}

/**
 * The first mark and the candidates it leaves; its set of kept blobs (one entry per blob the
 * store keeps) goes once they are listed, before the second mark builds its own.
 */
async function firstLook(registry: Registry, options: CollectOptions, cutoff: number, report: CollectReport, found: () => void) {
  const first = await mark(registry, options, cutoff, report);
  const unreferenced = await candidates(registry.driver, first, cutoff, report, options, found);
  return { unreferenced, untagged: first.untagged, read: first.read };
}

function tombstone(digest: Digest, run: string): string {
  return gcPaths.mark(digest, "tombstone", run);
}

function claim(digest: Digest, run: string): string {
  return gcPaths.mark(digest, "claim", run);
}

/** Candidates whose run's marks are removed in one request (a writer waiting for a claim waits that much longer). */
const FORGET_BATCH = 64;

/** Removes a run's tombstones and claims on these blobs, and their directories once empty. */
async function forgetCandidates(driver: StorageDriver, digests: Digest[], run: string): Promise<void> {
  for (let i = 0; i < digests.length; i += FORGET_BATCH) {
    const batch = digests.slice(i, i + FORGET_BATCH);
    await driver.deleteObjects(batch.flatMap((d) => [claim(d, run), tombstone(d, run)]));
    if (driver.removeEmptyDir) await Promise.all(batch.map((d) => driver.removeEmptyDir?.(gcPaths.marks(d))));
  }
}

/** Tombstones, claims and writers' marks older than this were left by a process that died. */
const LEFTOVER_MS = 60 * 60_000;

/** Removes what collectors and writers that died left under _gc (a collector that stalled this long spares what it claimed). */
async function removeLeftovers(driver: StorageDriver, now: number): Promise<void> {
  const old = (files: Array<{ path: string; modTime: Date }>) => files.filter((file) => now - file.modTime.getTime() > LEFTOVER_MS).map((file) => file.path);
  for (const algorithm of await listIfPresent(driver, gcPaths.marksRoot)) {
    await forEachLimit(await listIfPresent(driver, algorithm), CONCURRENCY, async (marksDir) => {
      await driver.deleteObjects(old(await driver.walk(marksDir)));
      await driver.removeEmptyDir?.(marksDir);
    });
  }
  const runs = await unlessMissing(() => driver.walk(gcPaths.runsRoot));
  if (runs) await driver.deleteObjects(old(runs));
}

/** What a mark keeps: `spared` are those kept only because a repository linked them within the delay. */
interface Marked {
  keep: Set<Digest>;
  spared: Set<Digest>;
}

/** Counts a blob that is kept though nothing references it (young, rescued, or left for the next run). */
function spared(report: CollectReport): void {
  report.blobsKept++;
  report.blobsSpared++;
}

/** Whether the mark keeps the blob, counting it as kept (and as spared by the delay). */
function keptByMark(marked: Marked, digest: Digest, report: CollectReport): boolean {
  if (!marked.keep.has(digest)) return false;
  report.blobsKept++;
  if (marked.spared.has(digest)) report.blobsSpared++;
  return true;
}

/**
 * The blobs the mark did not keep: what the sweep will consider. Until one older than the cutoff
 * turns up (then `found` is told) each is looked at: the young ones are spared, and a run that
 * finds no old one ends without a sweep. After that the sweep alone looks at their age.
 */
async function candidates(driver: StorageDriver, marked: Marked, cutoff: number, report: CollectReport, options: CollectOptions, found: () => void): Promise<Digest[]> {
  const unmarked: Digest[] = [];
  let seen = 0;
  let old = false;
  await forEachLimit(await blobPrefixes(driver), CONCURRENCY, async (listPrefix) => {
    for (const digest of await listPrefix()) {
      seen++;
      if (keptByMark(marked, digest, report)) continue;
      if (!old) {
        const info = await unlessMissing(() => driver.stat(layout.blobData(digest)));
        if (!info || info.isDir) continue;
        if (isYoung(info.modTime.getTime(), cutoff)) {
          spared(report);
          continue;
        }
        old = true;
        found();
      }
      unmarked.push(digest);
    }
    options.progress?.("scan", { blobs: seen, unreferenced: unmarked.length });
  });
  return unmarked;
}

/** A mark the sweep decides against, and whether a removal may still rely on it. */
interface Basis {
  marked: Marked;
  stands: () => boolean;
}

/** How many times a run marks again after its fence broke before it spares what is left. */
const MAX_REMARKS = 3;

/**
 * The second mark, taken under the removal fence's notice, and what removals rely on while
 * that notice stands. A break of the fence (a rewrite of the epoch that stalled past maxGapMs)
 * ends the notice: writers may have seen the fence quiet meanwhile and skipped their rescue,
 * linking what the mark did not see. The mark is then taken again under the new notice (what
 * an earlier mark read is not read again), at most MAX_REMARKS times; after that the answer is
 * undefined and the run spares what is left.
 */
async function markUnderNotice(registry: Registry, barrier: CollectionBarrier, options: CollectOptions, cutoff: number, report: CollectReport, known: Map<string, Map<Digest, ManifestRefs>>): Promise<() => Promise<Basis | undefined>> {
  const removals = barrier.fence;
  let read = known;
  const take = async (): Promise<Basis> => {
    await removals.ready();
    const notice = removals.notices;
    const marked = await mark(registry, { ...options, deleteUntagged: false }, cutoff, report, read);
    read = marked.read;
    return { marked, stands: () => removals.notices === notice };
  };
  let current = Promise.resolve(await take());
  let remarks = 0;
  return async () => {
    for (;;) {
      const taking = current;
      const basis = await taking;
      if (basis.stands()) return basis;
      // The first to find it broken marks again; the others wait for that mark.
      if (current === taking) {
        if (remarks === MAX_REMARKS) return undefined;
        remarks++;
        current = take();
      }
    }
  };
}

/**
 * Removes each candidate the mark did not keep and older than the cutoff (a blob pushed again
 * meanwhile is young again), each under the run's claim; a dry run (no `run`) only counts them.
 */
async function sweep(registry: Registry, barrier: CollectionBarrier, unreferenced: Digest[], basis: () => Promise<Basis | undefined>, cutoff: number, run: string | undefined, report: CollectReport, options: CollectOptions): Promise<void> {
  let done = 0;
  let decided: Digest[] = [];
  const forget = async (digest: Digest) => {
    if (!run) return;
    decided.push(digest);
    if (decided.length < FORGET_BATCH) return;
    const batch = decided;
    decided = [];
    await forgetCandidates(registry.driver, batch, run);
  };
  /** Keeps, spares or removes the candidate; false when it is to be decided again (its mark broke). */
  const settle = async (digest: Digest): Promise<boolean> => {
    const against = await basis();
    if (!against) {
      spared(report);
      return true;
    }
    if (keptByMark(against.marked, digest, report)) return true;
    if (run) return decide(registry, barrier, digest, run, against.stands, cutoff, report);
    const info = await oldData(registry.driver, digest, cutoff, report);
    if (info) removed(report, digest, info.size);
    return true;
  };
  const consider = async (digest: Digest) => {
    // Bounded: basis() marks again only so often, then answers undefined.
    while (!(await settle(digest)));
    await forget(digest);
  };
  await forEachLimit(unreferenced, CONCURRENCY, async (digest) => {
    await consider(digest);
    if (++done % 256 === 0 || done === unreferenced.length) {
      options.progress?.("sweep", { considered: done, deleted: report.blobsDeleted.length, bytes: report.bytesFreed });
    }
  });
  if (run) await forgetCandidates(registry.driver, decided, run);
  report.blobsDeleted.sort();
}

/** The blob's data when it is there and older than the cutoff; a young one (pushed again meanwhile) is counted as spared. */
async function oldData(driver: StorageDriver, digest: Digest, cutoff: number, report: CollectReport): Promise<FileInfo | undefined> {
  const info = await unlessMissing(() => driver.stat(layout.blobData(digest)));
  if (!info || info.isDir) return undefined;
  if (!isYoung(info.modTime.getTime(), cutoff)) return info;
  spared(report);
  return undefined;
}

function removed(report: CollectReport, digest: Digest, size: number): void {
  report.blobsDeleted.push(digest);
  report.bytesFreed += size;
}

/**
 * The collector's side of collection-guard.ts: claims the candidate, then spares it if
 * a writer is moving its data or has rescued it (the tombstone is gone), and removes it otherwise
 * (old enough, within the claim's bound). False, with nothing counted, when the mark it was
 * decided against no longer `stands` at the removal: it is to be decided again.
 */
async function decide(registry: Registry, barrier: CollectionBarrier, digest: Digest, run: string, stands: () => boolean, cutoff: number, report: CollectReport): Promise<boolean> {
  const { driver } = registry;
  const { clock } = barrier;
  const bound = barrier.guard.timing.claimBoundMs;
  await driver.putContent(claim(digest, run), Buffer.from(new Date().toISOString()), true);
  const claimed = clock.now();
  const marks = await readMarks(driver, digest);
  if (marks.writer.length > 0 || !marks.tombstone.includes(tombstone(digest, run))) {
    spared(report);
    report.blobsRescued++;
    return true;
  }
  const info = await oldData(driver, digest, cutoff, report);
  if (!info) return true;
  // A collector that stalled past the bound leaves the blob: a writer waiting for its claim may
  // have stopped waiting. Looked at last thing before the delete, after the removal fence's
  // wait (a new notice, after a break), as is the mark.
  if (await registry.blobs.remove(digest, () => stands() && clock.now() - claimed < bound)) removed(report, digest, info.size);
  // A mark that broke never stands again.
  else if (!stands()) return false;
  else spared(report);
  return true;
}

/** What the server counts of its collections (registry_gc_* metrics). */
export interface CollectionCounters {
  collected(report: CollectReport): void;
  failed(): void;
}

/** storage.gc in the server: a collection every interval (none while read-only), logged. */
export function scheduleCollection(
  driver: StorageDriver,
  options: { intervalMs: number; delayMs: number; paused: () => boolean },
  log: Logger,
  counters: CollectionCounters,
): () => void {
  const collect = async () => {
    try {
      const report = await collectGarbage(driver, { dryRun: false, deleteUntagged: false, delayMs: options.delayMs });
      counters.collected(report);
      log.info({ repositories: report.repositories, blobsDeleted: report.blobsDeleted.length, bytesFreed: report.bytesFreed }, "garbage collection done");
    } catch (err) {
      counters.failed();
      log.warn({ err: err instanceof Error ? err.message : String(err) }, "garbage collection failed; retrying next interval");
    }
  };
  return repeat(options.intervalMs, collect, { paused: options.paused, immediately: false });
}
