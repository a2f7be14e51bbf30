import { randomUUID } from "node:crypto";
import { isDigest, type Digest } from "./digest.js";
import { layout } from "./layout.js";
import type { RepositoryName } from "./names.js";
import { deleteIfPresent, listIfPresent, unlessMissing, type StorageDriver } from "../storage/driver.js";

/** Where instances keep the pull times they saw: beside distribution's layout, which skips `_pulls`. */
const PULLS = `${layout.root}/_pulls`;
/** The file a compaction merges every instance's into. */
const MERGED = "merged";
/** An instance's file older than this is merged and removed by a compaction (a live instance starts a new one at its next flush). */
const STALE_MS = 3_600_000;

/** A repository's files: `_pulls/<name>/_times/<instance>` (a repository's path components never start with `_`). */
function timesDir(name: RepositoryName): string {
  return `${PULLS}/${name}/_times`;
}

function parseTimes(content: Buffer): Map<Digest, number> {
  const times = new Map<Digest, number>();
  try {
    const json = JSON.parse(content.toString("utf8")) as Record<string, unknown>;
    for (const [digest, at] of Object.entries(json)) if (isDigest(digest) && typeof at === "number") times.set(digest, at);
  } catch {
    // A file cut short by a crash: its times are lost, not the others'.
  }
  return times;
}

/**
 * When each manifest was last pulled (a GET; a HEAD or a sibling mirror's request is no pull),
 * shared by every instance on the store. A pull costs a map update in memory. Every flush
 * merges the pulls since the last one into one small object per repository, each instance its
 * own, so that no two instances write the same object; a reader takes the latest time across
 * them. Memory holds only the pulls since the last flush.
 */
export class PullTimes {
  private pending = new Map<RepositoryName, Map<Digest, number>>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly instance: string = randomUUID(),
  ) {}

  record(name: RepositoryName, digest: Digest, at = Date.now()): void {
    let times = this.pending.get(name);
    if (!times) this.pending.set(name, (times = new Map()));
    times.set(digest, at);
  }

  /** Merges the pulls since the last flush into this instance's objects. Times are best effort: not synced to disk. */
  async flush(): Promise<void> {
    const flushing = this.pending;
    this.pending = new Map();
    const repositories = [...flushing];
    for (const [i, [name, times]] of repositories.entries()) {
      const path = `${timesDir(name)}/${this.instance}`;
      try {
        const content = await unlessMissing(() => this.driver.getContent(path));
        const merged = content ? parseTimes(content) : new Map<Digest, number>();
        for (const [digest, at] of times) merged.set(digest, Math.max(at, merged.get(digest) ?? 0));
        await this.driver.putContent(path, Buffer.from(JSON.stringify(Object.fromEntries(merged))), true);
      } catch (err) {
        // What is not written yet waits for the next flush (a later pull of the same manifest wins).
        for (const [left, leftTimes] of repositories.slice(i)) {
          for (const [digest, at] of leftTimes) if (!this.pending.get(left)?.has(digest)) this.record(left, digest, at);
        }
        throw err;
      }
    }
  }

  /** The latest pull time of each manifest of a repository, across every instance. */
  static async read(driver: StorageDriver, name: RepositoryName): Promise<Map<Digest, number>> {
    const latest = new Map<Digest, number>();
    for (const path of await listIfPresent(driver, timesDir(name))) {
      const content = await unlessMissing(() => driver.getContent(path));
      if (!content) continue;
      for (const [digest, at] of parseTimes(content)) latest.set(digest, Math.max(at, latest.get(digest) ?? 0));
    }
    return latest;
  }

  /** Merges a repository's files into one, and removes the stale ones it merged (instances gone since). */
  static async compact(driver: StorageDriver, name: RepositoryName, now = Date.now()): Promise<void> {
    const files = (await driver.walk(timesDir(name))).filter((f) => !f.path.endsWith(`/${MERGED}`));
    if (files.length === 0) return;
    const merged = await PullTimes.read(driver, name);
    await driver.putContent(`${timesDir(name)}/${MERGED}`, Buffer.from(JSON.stringify(Object.fromEntries(merged))), true);
    for (const file of files) if (now - file.modTime.getTime() > STALE_MS) await deleteIfPresent(driver, file.path);
  }
}
