import { randomBytes } from "node:crypto";
import { isDigest, type Digest } from "../registry/digest.js";
import { layout } from "../registry/layout.js";
import { isRepositoryName, isTag, type RepositoryName, type Tag } from "../registry/names.js";
import { listIfPresent, PathNotFoundError, type StorageDriver } from "../storage/driver.js";

/** A standby's journal, beside distribution's layout (which skips `_writeback`). */
const ROOT = `${layout.root}/_writeback`;
const JOURNAL = `${ROOT}/journal`;
const CONFLICTS = `${ROOT}/conflicts`;

/**
 * One write a standby took for its upstream, as the client made it. `base`: where the tag
 * pointed in this store before the push (the upstream's value as last seen, or an earlier
 * push's); null when it pointed nowhere. The replay writes over the upstream's tag only while
 * it still points there (docs/design/writeback.md).
 */
export type WriteEntry =
  | { kind: "manifest"; name: RepositoryName; digest: Digest; mediaType: string; tag?: Tag; base?: Digest | null; at: string }
  | { kind: "untag"; name: RepositoryName; tag: Tag; digest: Digest; at: string }
  | { kind: "delete"; name: RepositoryName; digest: Digest; at: string };

export interface Journaled {
  /** Sorts in push order: `<ms since epoch>-<sequence>-<random>`. */
  key: string;
  entry: WriteEntry;
}

/**
 * An entry the replay decided against: a tag left as the upstream had it (conflict), or a write
 * that could not be made (dropped); what each side held, and why.
 */
export interface Conflict {
  key: string;
  entry: WriteEntry;
  /** Where the upstream's tag pointed when the replay came to it (null: nowhere, or not asked). */
  upstream: Digest | null;
  reason: string;
  result: "conflict" | "dropped";
  at: string;
}

/** Reads one journal file; undefined for anything that is not an entry this version wrote. */
function parseEntry(content: Buffer): WriteEntry | undefined {
  let json: unknown;
  try {
    json = JSON.parse(content.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof json !== "object" || json === null) return undefined;
  const e = json as Record<string, unknown>;
  const name = e.name;
  const digest = e.digest;
  if (e.v !== 1 || typeof name !== "string" || !isRepositoryName(name) || typeof digest !== "string" || !isDigest(digest) || typeof e.at !== "string") return undefined;
  const tag = typeof e.tag === "string" && isTag(e.tag) ? e.tag : undefined;
  if (e.kind === "delete") return { kind: "delete", name, digest, at: e.at };
  if (e.kind === "untag") return tag ? { kind: "untag", name, tag, digest, at: e.at } : undefined;
  if (e.kind !== "manifest" || typeof e.mediaType !== "string") return undefined;
  const base = typeof e.base === "string" && isDigest(e.base) ? e.base : null;
  return tag ? { kind: "manifest", name, digest, mediaType: e.mediaType, tag, base, at: e.at } : { kind: "manifest", name, digest, mediaType: e.mediaType, at: e.at };
}

const keyOf = (path: string) => path.slice(path.lastIndexOf("/") + 1);

/**
 * The standby's writes waiting for its upstream, one small object each in its own store, so
 * that they survive a restart (and kill -9: an entry is durable before the push is answered).
 * Keys sort in push order within an instance.
 */
export class WritebackJournal {
  private lastMs = 0;
  private sequence = 0;

  constructor(private readonly driver: StorageDriver) {}

  async append(entry: WriteEntry): Promise<string> {
    const now = Math.max(Date.now(), this.lastMs);
    this.sequence = now === this.lastMs ? this.sequence + 1 : 0;
    this.lastMs = now;
    const key = `${String(now).padStart(15, "0")}-${String(this.sequence).padStart(6, "0")}-${randomBytes(4).toString("hex")}`;
    await this.driver.putContent(`${JOURNAL}/${key}`, Buffer.from(JSON.stringify({ v: 1, ...entry })));
    return key;
  }

  /** The entries in push order; `unreadable`: keys of files this version cannot read (left in place, reported). */
  async entries(): Promise<{ entries: Journaled[]; unreadable: string[] }> {
    const paths = (await listIfPresent(this.driver, JOURNAL)).sort();
    const entries: Journaled[] = [];
    const unreadable: string[] = [];
    for (const path of paths) {
      let content: Buffer;
      try {
        content = await this.driver.getContent(path);
      } catch (err) {
        // Replayed and removed by another process since the listing.
        if (err instanceof PathNotFoundError) continue;
        throw err;
      }
      const entry = parseEntry(content);
      if (entry) entries.push({ key: keyOf(path), entry });
      else unreadable.push(keyOf(path));
    }
    return { entries, unreadable };
  }

  /** The entry has reached the upstream (or was decided against): it leaves the journal. */
  async done(key: string): Promise<void> {
    await this.driver.delete(`${JOURNAL}/${key}`);
  }

  /** Kept for the operator (`mirror writeback`), written before the entry is done. */
  async recordConflict(conflict: Conflict): Promise<void> {
    await this.driver.putContent(`${CONFLICTS}/${conflict.key}`, Buffer.from(JSON.stringify(conflict)));
  }

  async conflicts(): Promise<Conflict[]> {
    const paths = (await listIfPresent(this.driver, CONFLICTS)).sort();
    const found = await Promise.all(paths.map((p) => this.driver.getContent(p).then((c) => JSON.parse(c.toString("utf8")) as Conflict, () => undefined)));
    return found.filter((c): c is Conflict => c !== undefined);
  }
}
