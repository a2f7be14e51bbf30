import { randomUUID } from "node:crypto";
import { isDigest, type Digest } from "./digest.js";
import { layout } from "./layout.js";
import type { RepositoryName } from "./names.js";
import { deleteIfPresent, listIfPresent, unlessMissing, type StorageDriver } from "../storage/driver.js";

/** Where instances keep the pull times they saw: beside distribution's layout, which skips `_pulls`. */
const PULLS = `${layout.root}/_pulls`;
/** The file a compaction merges every instance's into. */
const MERGED = "merged";
/** An instance's file older than this is merged and removed by a compaction (a live instance writes its whole map again at its next flush). */
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
 * writes one small object per repository pulled since the last one, each instance its own, so
 * that no two instances write the same object; a reader takes the latest time across them.
 */
export class PullTimes {
  private readonly seen = new Map<RepositoryName, Map<Digest, number>>();
  private readonly dirty = new Set<RepositoryName>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly instance = randomUUID(),
  ) {}

  record(name: RepositoryName, digest: Digest, at = Date.now()): void {
    let times = this.seen.get(name);
    if (!times) this.seen.set(name, (times = new Map()));
    times.set(digest, at);
    this.dirty.add(name);
  }

  /** Writes what was pulled since the last flush. Times are best effort: not synced to disk. */
  async flush(): Promise<void> {
    const names = [...this.dirty];
    this.dirty.clear();
    for (const name of names) {
      const times = this.seen.get(name);
      if (times) await this.driver.putContent(`${timesDir(name)}/${this.instance}`, Buffer.from(JSON.stringify(Object.fromEntries(times))), true);
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
