import type { Logger } from "pino";
import type { Digest } from "../registry/digest.js";
import { parseManifest, type Descriptor } from "../registry/manifest-format.js";
import type { RepositoryName, Tag } from "../registry/names.js";
import type { Registry, StoredRepository } from "../registry/registry.js";
import { UpstreamError, type UpstreamRegistry } from "./upstream.js";
import type { Conflict, Journaled, WriteEntry, WritebackJournal } from "./writeback-journal.js";

/**
 * How an entry left the journal: written to the upstream, found there already, its tag left to
 * the upstream's value (a conflict), or dropped unwritten (the upstream refused it, or this store
 * lost what it names); the last two are recorded with their reason.
 */
export type ReplayResult = "written" | "present" | "conflict" | "dropped";

/** An entry that can never be written as it stands: recorded, and the journal goes on. */
class Undeliverable extends Error {}

/** How often a standby with entries asks whether its upstream answers again. */
const RETRY_MS = 2000;
/** Blobs of one manifest sent at once. */
const BLOB_CONCURRENCY = 4;

export interface ReplayReport {
  at: string;
  results: Record<ReplayResult, number>;
  /** Why the pass stopped before the journal's end (the upstream failed): the entry is tried again. */
  error?: string;
}

/** What /health, the console and `mirror writeback` show. */
export interface WritebackState {
  pending: number;
  /** When the oldest entry was pushed. */
  oldestAt: string | undefined;
  replaying: boolean;
  lastReplay: ReplayReport | undefined;
  /** Journal files this version cannot read: left in place. */
  unreadable: string[];
  /** Set while entries wait and the last pass failed: /health says "degraded". */
  error?: string;
}

/** What the replay tells the mirror of each tag it settled: serve the upstream's value from now on, or the one it now shares. */
export type TagSettled = (name: RepositoryName, tag: Tag, followUpstream: boolean) => void;

function entryTag(entry: WriteEntry): Tag | undefined {
  return entry.kind === "delete" ? undefined : entry.tag;
}

const tagKey = (name: string, tag: string) => `${name}:${tag}`;

/**
 * A standby's write-back (proxy.pushes: writeback): the pushes it took while its upstream did
 * not answer are journaled, and replayed to the upstream in push order once it answers again,
 * as a client would push them. The rules (what wins a tag, what is retried) are in
 * docs/design/writeback.md.
 */
export class Writeback {
  /** Journaled tags: served from this store until their entries are replayed. */
  private readonly pendingTags = new Map<string, number>();
  private pending: Journaled[] = [];
  private unreadable: string[] = [];
  private running: Promise<ReplayReport> | undefined;
  private lastReplay: ReplayReport | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  /** Set while the journal is being listed: what is recorded meanwhile, which the listing may miss. */
  private recordedWhileListing: Journaled[] | undefined;

  constructor(
    readonly journal: WritebackJournal,
    private readonly local: Registry,
    private readonly upstream: UpstreamRegistry,
    private readonly log: Logger,
    private readonly count: (result: ReplayResult) => void,
    private readonly settled: TagSettled = () => undefined,
  ) {}

  /** Reads the journal a restart left (serve does it before listening). */
  async load(): Promise<void> {
    await this.relist();
    if (this.unreadable.length > 0) this.log.error({ files: this.unreadable }, "write-back: journal files this version cannot read are left in place");
  }

  /** Journals a write the standby has made in its own store; durable once this resolves. */
  async record(entry: WriteEntry): Promise<void> {
    const journaled = { key: await this.journal.append(entry), entry };
    this.recordedWhileListing?.push(journaled);
    this.index([...this.pending, journaled]);
  }

  /** Reads the journal again (another process may have replayed some); answers the entries listed. */
  private async relist(): Promise<Journaled[]> {
    this.recordedWhileListing = [];
    try {
      const { entries, unreadable } = await this.journal.entries();
      const listed = new Set(entries.map((j) => j.key));
      const missed = this.recordedWhileListing.filter((j) => !listed.has(j.key));
      this.index([...entries, ...missed].sort((a, b) => (a.key < b.key ? -1 : 1)));
      this.unreadable = unreadable;
      return entries;
    } finally {
      this.recordedWhileListing = undefined;
    }
  }

  /** The oldest `limit` writes waiting, in push order. */
  waiting(limit: number): WriteEntry[] {
    return this.pending.slice(0, limit).map((j) => j.entry);
  }

  /** Whether a journaled write of this tag waits for the upstream. */
  holds(name: RepositoryName, tag: Tag): boolean {
    return this.pendingTags.has(tagKey(name, tag));
  }

  state(): WritebackState {
    const last = this.lastReplay;
    return {
      pending: this.pending.length,
      oldestAt: this.pending[0]?.entry.at,
      replaying: this.running !== undefined,
      lastReplay: last,
      unreadable: this.unreadable,
      ...(this.pending.length > 0 && last?.error ? { error: last.error } : {}),
    };
  }

  /** Replays while entries wait, every few seconds, once `answers` says the upstream is back. */
  start(answers: () => Promise<boolean>): void {
    this.stopped = false;
    const tick = async () => {
      if (this.pending.length > 0 && (await answers())) await this.replay();
      if (this.stopped) return;
      this.timer = setTimeout(() => void tick(), RETRY_MS);
      this.timer.unref();
    };
    this.timer = setTimeout(() => void tick(), 0);
  }

  /** Ends the loop; a pass in flight finishes (each entry is safe to cut: the next start replays it). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over the journal, in push order, stopping at the first entry the upstream fails. One at a time. */
  replay(): Promise<ReplayReport> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<ReplayReport> {
    const report: ReplayReport = { at: new Date().toISOString(), results: { written: 0, present: 0, conflict: 0, dropped: 0 } };
    for (const journaled of await this.relist()) {
      let result: ReplayResult;
      try {
        result = await this.replayEntry(journaled);
      } catch (err) {
        report.error = err instanceof Error ? err.message : String(err);
        this.log.warn({ key: journaled.key, entry: journaled.entry, err: report.error }, "write-back: the upstream failed an entry; the journal waits");
        break;
      }
      await this.journal.done(journaled.key);
      report.results[result]++;
      this.count(result);
      this.index(this.pending.filter((j) => j.key !== journaled.key));
      const tag = entryTag(journaled.entry);
      if (tag) this.settled(journaled.entry.name, tag, result === "conflict" || result === "dropped");
    }
    this.lastReplay = report;
    const { results } = report;
    if (results.written + results.present + results.conflict + results.dropped > 0) this.log.info({ ...results, left: this.pending.length }, "write-back: replayed to the upstream");
    return report;
  }

  private index(entries: Journaled[]): void {
    this.pending = entries;
    this.pendingTags.clear();
    for (const { entry } of entries) {
      const tag = entryTag(entry);
      if (tag) this.pendingTags.set(tagKey(entry.name, tag), (this.pendingTags.get(tagKey(entry.name, tag)) ?? 0) + 1);
    }
  }

  /** Throws an UpstreamError (or a store's error) when the entry must be tried again. */
  private async replayEntry(journaled: Journaled): Promise<ReplayResult> {
    try {
      return await this.deliver(journaled);
    } catch (err) {
      // The upstream's 4xx to a write (but to our credentials) says the same to every retry.
      const refused = err instanceof UpstreamError && err.status !== undefined && err.status < 500 && err.status !== 401 && err.status !== 403;
      if (!refused && !(err instanceof Undeliverable)) throw err;
      return this.decide(journaled, null, (err as Error).message, "dropped");
    }
  }

  private async deliver(journaled: Journaled): Promise<ReplayResult> {
    const { entry } = journaled;
    const repo = this.local.repository(entry.name);
    if (entry.kind === "delete") {
      const outcome = await this.upstream.deleteManifest(entry.name, entry.digest);
      if (outcome === "unsupported") throw new Undeliverable(`upstream ${this.upstream.url} deletes no manifests (its storage.delete is off)`);
      return outcome === "deleted" ? "written" : "present";
    }
    if (entry.tag === undefined) {
      await this.sendManifest(repo, entry.digest);
      return "written";
    }
    const current = await this.upstream.headManifest(entry.name, entry.tag);
    const upstreamDigest = current.kind === "found" ? (current.digest ?? null) : null;
    if (entry.kind === "untag") {
      if (upstreamDigest === null) return "present";
      if (upstreamDigest !== entry.digest) return this.decide(journaled, upstreamDigest, "the upstream's tag was moved since the standby deleted it: the upstream's value stays");
      const outcome = await this.upstream.deleteManifest(entry.name, entry.tag);
      if (outcome === "unsupported") throw new Undeliverable(`upstream ${this.upstream.url} deletes no tags (distribution deletes manifests by digest only)`);
      return outcome === "deleted" ? "written" : "present";
    }
    if (upstreamDigest === entry.digest) return "present";
    // The upstream's tag is written over only while it points where this store's pointed before the push.
    if (upstreamDigest !== null && upstreamDigest !== entry.base) {
      await this.sendManifest(repo, entry.digest);
      return this.decide(journaled, upstreamDigest, `the upstream's tag points at ${upstreamDigest}, which this standby did not hold under it when it took the push: the upstream's value stays, the push is there by digest`);
    }
    const stored = await this.sendManifest(repo, entry.digest, entry.tag);
    const check = await this.upstream.headManifest(entry.name, entry.tag);
    if (stored !== entry.digest || check.kind !== "found" || check.digest !== entry.digest) {
      throw new UpstreamError(`upstream ${this.upstream.url} holds ${entry.name}:${entry.tag} as ${check.kind === "found" ? check.digest : "nothing"} after the write-back of ${entry.digest}`);
    }
    return "written";
  }

  /** Keeps what the replay decided against for the operator, and says so. */
  private async decide({ key, entry }: Journaled, upstream: Digest | null, reason: string, result: "conflict" | "dropped" = "conflict"): Promise<ReplayResult> {
    const conflict: Conflict = { key, entry, upstream, reason, result, at: new Date().toISOString() };
    await this.journal.recordConflict(conflict);
    this.log.warn({ entry, upstream, reason }, result === "conflict" ? "write-back: conflict, the upstream's tag wins" : "write-back: an entry is dropped unwritten");
    return result;
  }

  private async manifestContent(repo: StoredRepository, digest: Digest): Promise<Buffer> {
    const stored = await repo.manifests.get(digest);
    if (!stored) throw new Undeliverable(`manifest ${repo.name}@${digest} is journaled but no longer in this store`);
    return stored.content;
  }

  /**
   * Sends a manifest, by `tag` or else by digest, once everything it references is on the
   * upstream: its blobs, the manifests of an index, its subject (when this store has it), each only
   * when the upstream lacks it. Answers the digest the upstream stored it under.
   */
  private async sendManifest(repo: StoredRepository, digest: Digest, tag?: Tag): Promise<Digest> {
    if (tag === undefined && (await this.upstream.headManifest(repo.name, digest)).kind === "found") return digest;
    const content = await this.manifestContent(repo, digest);
    const info = parseManifest(content, undefined);
    for (let i = 0; i < info.blobs.length; i += BLOB_CONCURRENCY) {
      await Promise.all(info.blobs.slice(i, i + BLOB_CONCURRENCY).map((blob) => this.sendBlob(repo, blob)));
    }
    for (const child of info.children) await this.sendManifest(repo, child.digest);
    if (info.subject && (await repo.manifests.get(info.subject.digest))) await this.sendManifest(repo, info.subject.digest);
    return this.upstream.putManifest(repo.name, tag ?? digest, content, info.mediaType);
  }

  private async sendBlob(repo: StoredRepository, blob: Descriptor): Promise<void> {
    if ((await this.upstream.statBlob(repo.name, blob.digest)).kind === "found") return;
    const held = await repo.blobs.stat(blob.digest);
    if (!held) throw new Undeliverable(`blob ${blob.digest} of ${repo.name} is no longer in this store`);
    await this.upstream.pushBlob(repo.name, blob.digest, held.size, () => repo.blobs.open(blob.digest, 0, held.size));
  }
}
