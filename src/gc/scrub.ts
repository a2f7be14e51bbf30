import { createHash, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import { listRepositories } from "../registry/catalog.js";
import { readLink } from "../registry/blobs.js";
import { digestAlgorithm, isDigest, parseDigest, type Digest } from "../registry/digest.js";
import { layout } from "../registry/layout.js";
import { isTag, type RepositoryName, type Tag } from "../registry/names.js";
import { deleteIfPresent, listIfPresent, unlessMissing, type StorageDriver } from "../storage/driver.js";
import { CollectionBarrier } from "./barrier.js";
import { linksBelow } from "./collect.js";
import { forEachLimit } from "./limit.js";
import { repeat } from "./repeat.js";

/** What the scrub finds wrong in a store. */
export type ScrubProblemKind =
  /** Its bytes do not hash to its digest: truncated, empty, a flipped bit. */
  | "blob-corrupt"
  /** A manifest names a blob the store does not hold. */
  | "blob-missing"
  /** A manifest names a blob with a size other than the blob's. */
  | "blob-size"
  /** A repository's revision link to a manifest the store does not hold. */
  | "manifest-missing"
  /** A tag pointing at a manifest the store does not hold. */
  | "tag-dangling"
  /** A repository's `_layers` link to a blob the store does not hold (distribution's own collection leaves these). */
  | "layer-link-dangling";

export interface ScrubProblem {
  kind: ScrubProblemKind;
  digest: Digest;
  /** The repositories it shows in, each with the tags that reach it. */
  where: Array<{ repository: RepositoryName; tags: Tag[] }>;
  detail: string;
  /** What the scrub did about it. */
  action?: "quarantined" | "repaired" | "repair failed" | "unlinked";
  actionDetail?: string;
}

/** Fetches a blob's (or a manifest's) bytes from a peer again, in a repository that holds it; undefined when the peer lacks it. */
export type Refetch = (name: RepositoryName, digest: Digest) => Promise<Readable | undefined>;

export interface ScrubOptions {
  /** Blob content read at most this fast (MiB/s), so that a serving registry stays fast; unbounded when unset. */
  rateMiBps?: number;
  /** Report only: nothing is moved or fetched. */
  dryRun: boolean;
  /** Puts damaged and missing blobs back from a peer (the mirror's upstream, or one named). */
  refetch?: Refetch;
  progress?: (phase: "blobs" | "repositories" | "repairs", counts: Record<string, number>) => void;
}

export interface ScrubReport {
  blobs: number;
  bytes: number;
  repositories: number;
  manifests: number;
  problems: ScrubProblem[];
}

/** Where damaged blobs are moved: beside distribution's layout, which skips `_quarantine`. */
const QUARANTINE = `${layout.root}/_quarantine`;
/** Blobs hashed at once: enough to hide a store's latency, never unbounded. */
const CONCURRENCY = 4;

export const scrubPaths = {
  quarantined(digest: Digest): string {
    return `${QUARANTINE}/${digestAlgorithm(digest)}/${digest.slice(digest.indexOf(":") + 1)}/data`;
  },
  /** A refetched blob, until its digest is checked. */
  incoming(id: string): string {
    return `${QUARANTINE}/_incoming/${id}`;
  },
} as const;

/** Holds readers to `bytesPerSecond` on average, over the whole run. */
class ReadRate {
  private readonly started = Date.now();
  private read = 0;

  constructor(private readonly bytesPerSecond: number | undefined) {}

  async take(bytes: number): Promise<void> {
    this.read += bytes;
    if (!this.bytesPerSecond) return;
    const due = (this.read / this.bytesPerSecond) * 1000 - (Date.now() - this.started);
    if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
  }
}

/** Streams `source` into a hash of `digest`'s algorithm, at the rate; answers the digest it found and the bytes. */
async function hashOf(source: Readable, algorithm: string, rate: ReadRate): Promise<{ digest: string; size: number }> {
  const hash = createHash(algorithm);
  let size = 0;
  for await (const chunk of source) {
    const bytes = chunk as Buffer;
    hash.update(bytes);
    size += bytes.length;
    await rate.take(bytes.length);
  }
  return { digest: `${algorithm}:${hash.digest("hex")}`, size };
}

/** The digest a blob's data file stands for: `blobs/<alg>/<2 hex>/<hex>/data`. */
function blobOfPath(path: string): Digest | undefined {
  const match = /\/blobs\/([a-z0-9]+)\/[0-9a-f]{2}\/([0-9a-f]+)\/data$/.exec(path);
  if (!match) return undefined;
  const parsed = parseDigest(`${match[1]}:${match[2]}`);
  return parsed.ok ? parsed.digest : undefined;
}

interface Reference {
  digest: Digest;
  size: number | undefined;
  manifest: boolean;
}

/** What a manifest names, read leniently (an old store may hold what a push would refuse now). */
function referencesOf(content: Buffer): Reference[] {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(content.toString("utf8")) as Record<string, unknown>;
  } catch {
    return [];
  }
  const descriptors = (values: unknown, manifest: boolean): Reference[] =>
    (Array.isArray(values) ? values : [values]).flatMap((v) => {
      const d = v as { digest?: unknown; size?: unknown } | null;
      return d && typeof d.digest === "string" && isDigest(d.digest) ? [{ digest: d.digest, size: typeof d.size === "number" ? d.size : undefined, manifest }] : [];
    });
  return [...descriptors(json.config, false), ...descriptors(json.layers ?? [], false), ...descriptors(json.manifests ?? [], true)];
}

/**
 * Checks a store against itself, on any driver: every blob's bytes against its digest, every
 * manifest's references (present, with the sizes it claims), every tag's and `_layers` link's
 * target. A damaged blob is moved aside (GET and HEAD then answer 404, so clients push it again
 * and mirrors fetch it again), under the same removal protocol as a collection's; with `refetch`,
 * a damaged or missing blob is fetched again and put back once its digest checks.
 */
export async function scrubStore(driver: StorageDriver, options: ScrubOptions, barrier = new CollectionBarrier(driver)): Promise<ScrubReport> {
  try {
    return await scrub(driver, barrier, options);
  } finally {
    await barrier.close();
  }
}

async function scrub(driver: StorageDriver, barrier: CollectionBarrier, options: ScrubOptions): Promise<ScrubReport> {
  const report: ScrubReport = { blobs: 0, bytes: 0, repositories: 0, manifests: 0, problems: [] };
  const rate = new ReadRate(options.rateMiBps && options.rateMiBps * 1024 * 1024);
  const held = new Map<Digest, number>();
  const corrupt = new Map<Digest, string>();
  const files = (await driver.walk(layout.blobsRoot)).flatMap((f) => {
    const digest = blobOfPath(f.path);
    return digest ? [{ digest, size: f.size }] : [];
  });
  await forEachLimit(files, CONCURRENCY, async ({ digest, size }) => {
    const found = await unlessMissing(async () => hashOf(await driver.reader(layout.blobData(digest)), digestAlgorithm(digest), rate));
    // Removed since the walk (a collection): not damage.
    if (!found) return;
    report.blobs++;
    report.bytes += found.size;
    options.progress?.("blobs", { checked: report.blobs, of: files.length });
    if (found.digest === digest) held.set(digest, size);
    else corrupt.set(digest, `its ${found.size} bytes hash to ${found.digest}`);
  });

  const problems = new Map<string, ScrubProblem>();
  const note = (kind: ScrubProblemKind, digest: Digest, repository: RepositoryName, tags: Tag[], detail: string) => {
    const key = `${kind} ${digest}`;
    const problem = problems.get(key) ?? { kind, digest, where: [], detail };
    problems.set(key, problem);
    const place = problem.where.find((w) => w.repository === repository);
    if (place) place.tags = [...new Set([...place.tags, ...tags])].sort();
    else problem.where.push({ repository, tags: [...tags].sort() });
  };
  for (const [digest, detail] of corrupt) problems.set(`blob-corrupt ${digest}`, { kind: "blob-corrupt", digest, where: [], detail });

  const { repositories } = await listRepositories(driver, Number.MAX_SAFE_INTEGER);
  for (const name of repositories) {
    report.repositories++;
    options.progress?.("repositories", { checked: report.repositories, of: repositories.length });
    await scrubRepository(driver, name, new Holdings(driver, held), corrupt, note, report);
  }
  report.problems = [...problems.values()];
  if (options.dryRun) return report;

  options.progress?.("repairs", { problems: report.problems.length });
  for (const problem of report.problems) {
    if (problem.kind === "blob-corrupt") {
      await barrier.removing(() => driver.move(layout.blobData(problem.digest), scrubPaths.quarantined(problem.digest)));
      problem.action = "quarantined";
    }
    if (problem.kind === "layer-link-dangling") await unlinkDangling(driver, barrier, problem);
    const refetchable = problem.kind === "blob-corrupt" || problem.kind === "blob-missing" || problem.kind === "manifest-missing" || problem.kind === "tag-dangling";
    if (options.refetch && refetchable) await repair(driver, problem, options.refetch, rate);
  }
  return report;
}

/**
 * The blobs the store holds: those the scrub hashed, and, asked again, one written since its walk
 * (a push while the scrub runs is not damage). Writers put a blob's data before any link to it,
 * so a link whose data a fresh look does not find points at nothing.
 */
class Holdings {
  constructor(
    private readonly driver: StorageDriver,
    private readonly checked: Map<Digest, number>,
  ) {}

  async has(digest: Digest): Promise<boolean> {
    if (this.checked.has(digest)) return true;
    const info = await unlessMissing(() => this.driver.stat(layout.blobData(digest)));
    if (info) this.checked.set(digest, info.size);
    return info !== undefined;
  }

  /** Once `has` answered true. */
  size(digest: Digest): number | undefined {
    return this.checked.get(digest);
  }
}

/** One repository's manifests, tags and layer links against what the store holds. */
async function scrubRepository(
  driver: StorageDriver,
  name: RepositoryName,
  held: Holdings,
  corrupt: Map<Digest, string>,
  note: (kind: ScrubProblemKind, digest: Digest, repository: RepositoryName, tags: Tag[], detail: string) => void,
  report: ScrubReport,
): Promise<void> {
  const tagsOf = new Map<Digest, Tag[]>();
  for (const path of await listIfPresent(driver, layout.tagsDir(name))) {
    const tag = path.slice(path.lastIndexOf("/") + 1);
    if (!isTag(tag)) continue;
    const target = await readLink(driver, layout.tagCurrentLink(name, tag));
    if (!target) continue;
    tagsOf.set(target, [...(tagsOf.get(target) ?? []), tag]);
    if (!corrupt.has(target) && !(await held.has(target))) note("tag-dangling", target, name, [tag], `${name}:${tag} points at a manifest the store does not hold`);
  }
  // The tags that reach each manifest, through an index too.
  const reach = new Map<Digest, Set<Tag>>([...tagsOf].map(([d, t]) => [d, new Set(t)]));
  const revisions = (await linksBelow(driver, layout.revisionsDir(name))).map((l) => l.digest);
  const contents = new Map<Digest, Buffer>();
  for (const digest of revisions) {
    report.manifests++;
    if (corrupt.has(digest)) {
      note("blob-corrupt", digest, name, [...(reach.get(digest) ?? [])], corrupt.get(digest) ?? "");
      continue;
    }
    if (!(await held.has(digest))) {
      note("manifest-missing", digest, name, [...(reach.get(digest) ?? [])], `${name}@${digest} is linked but the store does not hold it`);
      continue;
    }
    const content = await unlessMissing(() => driver.getContent(layout.blobData(digest)));
    if (content) contents.set(digest, content);
  }
  for (const [digest, content] of contents) {
    for (const child of referencesOf(content).filter((r) => r.manifest)) {
      const tags = reach.get(child.digest) ?? new Set<Tag>();
      for (const tag of reach.get(digest) ?? []) tags.add(tag);
      reach.set(child.digest, tags);
    }
  }
  const named = new Set<Digest>();
  for (const [digest, content] of contents) {
    const tags = [...(reach.get(digest) ?? [])];
    for (const ref of referencesOf(content)) {
      named.add(ref.digest);
      if (corrupt.has(ref.digest)) note("blob-corrupt", ref.digest, name, tags, corrupt.get(ref.digest) ?? "");
      else if (!(await held.has(ref.digest))) note(ref.manifest ? "manifest-missing" : "blob-missing", ref.digest, name, tags, `${name}@${digest} names ${ref.digest}, which the store does not hold`);
      else if (ref.size !== undefined && held.size(ref.digest) !== ref.size) {
        note("blob-size", ref.digest, name, tags, `${name}@${digest} gives ${ref.digest} ${ref.size} bytes; it has ${held.size(ref.digest)}`);
      }
    }
  }
  // A link to a blob a manifest names is reported with the manifest, above.
  for (const { digest } of await linksBelow(driver, layout.layersDir(name))) {
    if (!corrupt.has(digest) && !named.has(digest) && !(await held.has(digest))) note("layer-link-dangling", digest, name, [], `${name}'s _layers link to ${digest}: the store does not hold it`);
  }
}

/**
 * Removes `_layers` links to a blob the store does not hold (what a collection leaves): a client
 * sees the same 404 with or without them. Looked at again first: a push may have put the blob
 * meanwhile, and then the link is its own.
 */
async function unlinkDangling(driver: StorageDriver, barrier: CollectionBarrier, problem: ScrubProblem): Promise<void> {
  if (await unlessMissing(() => driver.stat(layout.blobData(problem.digest)))) return;
  for (const { repository } of problem.where) await barrier.removing(() => deleteIfPresent(driver, layout.layerDir(repository, problem.digest)));
  problem.action = "unlinked";
}

/** Fetches a damaged or missing blob from the peer in a repository it shows in, and puts it in place once its digest checks. */
async function repair(driver: StorageDriver, problem: ScrubProblem, refetch: Refetch, rate: ReadRate): Promise<void> {
  const { digest } = problem;
  let last = "no repository names it";
  for (const { repository } of problem.where) {
    const incoming = scrubPaths.incoming(randomUUID());
    try {
      const source = await refetch(repository, digest);
      if (!source) {
        last = `the peer does not hold it in ${repository}`;
        continue;
      }
      const writer = await driver.writer(incoming, false);
      const hash = createHash(digestAlgorithm(digest));
      await pipeline(
        source,
        new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            hash.update(chunk);
            rate.take(chunk.length).then(() => callback(null, chunk), callback);
          },
        }),
        writer.stream,
      );
      await writer.commit();
      const got = `${digestAlgorithm(digest)}:${hash.digest("hex")}`;
      if (got !== digest) {
        last = `the peer's bytes hash to ${got}`;
        continue;
      }
      await driver.move(incoming, layout.blobData(digest));
      problem.action = "repaired";
      problem.actionDetail = `fetched again in ${repository}`;
      return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    } finally {
      await deleteIfPresent(driver, incoming).catch(() => undefined);
    }
  }
  problem.action = "repair failed";
  problem.actionDetail = last;
}

/** What a scrub inside the server reports: to the metrics, and to the console (the last run). */
export interface ScrubCounters {
  scrubbed(report: ScrubReport): void;
  failed(err: unknown): void;
}

/**
 * storage.scrub: a scrub every interval (the first after one interval), at `rateMiBps`, damage
 * quarantined (a mirror fetches a quarantined blob again at its next pull). Answers its stop.
 */
export function scheduleScrub(driver: StorageDriver, options: { intervalMs: number; rateMiBps: number; paused: () => boolean }, log: Logger, counters: ScrubCounters): () => void {
  const run = async () => {
    try {
      const report = await scrubStore(driver, { dryRun: false, rateMiBps: options.rateMiBps });
      counters.scrubbed(report);
      for (const problem of report.problems) log.warn({ kind: problem.kind, digest: problem.digest, where: problem.where, action: problem.action }, `scrub: ${problem.detail}`);
      log.info({ blobs: report.blobs, bytes: report.bytes, problems: report.problems.length }, "scrub done");
    } catch (err) {
      counters.failed(err);
      log.warn({ err: err instanceof Error ? err.message : String(err) }, "scrub failed; retrying next interval");
    }
  };
  return repeat(options.intervalMs, run, { paused: options.paused, immediately: false });
}

/** The last scrub inside the server, for the console's Storage view. */
export interface ScrubRecord {
  at: string;
  report?: ScrubReport;
  error?: string;
}
