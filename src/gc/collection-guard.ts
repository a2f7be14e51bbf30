import { randomUUID } from "node:crypto";
import { listIfPresent, unlessMissing, type StorageDriver } from "../storage/driver.js";
import type { Digest } from "../registry/digest.js";
import { RegistryError } from "../registry/errors.js";
import { layout } from "../registry/layout.js";
import type { WriteStart } from "../registry/write-barrier.js";
import { systemClock, type Clock } from "./clock.js";
import { GC_MARK_KINDS, gcPaths, type GcMarkKind } from "./paths.js";
import type { FenceTiming, RemovalWatch } from "./removal-fence.js";

/**
 * The writers' side of the per-blob protocol between collections and writers (the collector's
 * is in collect.ts): a write that starts using a blob and a collection deciding to delete it
 * each leave a mark before they look for the other's, so at least one of them sees the other,
 * and an acknowledged write never loses its blob. Writers skip it while the removal fence
 * shows nothing under way. The protocol and why it is safe: docs/design/gc-safety.md.
 */
export interface GuardTiming {
  /** A writer waits this long at most for a claim to go (a collector that died holding it). */
  claimWaitMs: number;
  /** How often it looks again. */
  claimPollMs: number;
  /** A collector deletes only within this long of its claim (what a writer's wait relies on). */
  claimBoundMs: number;
}

export const GUARD_TIMING: GuardTiming = { claimWaitMs: 60_000, claimPollMs: 50, claimBoundMs: 10_000 };

/** Of the fence's notice, the share a write taken on the quiet path may use: the rest is margin. */
const QUIET_SHARE = 0.75;

/** The writers' side of the protocol above (the collector's is in gc/collect.ts). */
export class CollectionGuard {
  constructor(
    private readonly driver: StorageDriver,
    private readonly watch: RemovalWatch,
    private readonly fence: FenceTiming,
    readonly timing: GuardTiming = GUARD_TIMING,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Taken before a write that starts using blobs: when the fence was last seen quiet. */
  ticket(): WriteStart {
    return { taken: this.watch.quietRead() };
  }

  /** Whether a write begun with this ticket ended soon enough for no collection to have missed it. */
  private quiet(ticket: WriteStart): boolean {
    return ticket.taken !== undefined && this.clock.now() - ticket.taken < this.fence.noticeMs * QUIET_SHARE;
  }

  /**
   * After a write (begun with `ticket`) that makes these blobs used: makes sure no collection
   * deletes them from now on, and answers those already gone.
   */
  async used(ticket: WriteStart, digests: Digest[]): Promise<Digest[]> {
    if (this.quiet(ticket)) return [];
    const distinct = [...new Set(digests)];
    const gone = await Promise.all(distinct.map((d) => this.rescue(d)));
    return distinct.filter((_, i) => gone[i]);
  }

  /**
   * Runs `move` (an upload's data moving into place as the blob, and its link) so that no
   * collection deletes the blob under it; fails, retryably, when one did anyway.
   */
  async moving<T>(digest: Digest, move: () => Promise<T>): Promise<T> {
    const ticket = this.ticket();
    const mark = ticket.taken === undefined ? gcPaths.mark(digest, "writer", randomUUID()) : undefined;
    if (mark) {
      await this.driver.putContent(mark, Buffer.from(new Date().toISOString()), true);
      await this.claimsGone(digest, (await readMarks(this.driver, digest)).claim);
    }
    try {
      const result = await move();
      if ((await this.used(ticket, [digest])).length > 0) {
        throw new RegistryError("UNAVAILABLE", `garbage collection removed blob ${digest} while it was being stored; push it again`);
      }
      return result;
    } finally {
      if (mark) {
        await this.driver.deleteObjects([mark]);
        await this.driver.removeEmptyDir?.(gcPaths.marks(digest));
      }
    }
  }

  /** Rescues the blob from every collection deciding on it; answers whether its data is gone. */
  private async rescue(digest: Digest): Promise<boolean> {
    const found = await readMarks(this.driver, digest);
    const claims = new Set(found.claim);
    if (found.tombstone.length > 0) {
      await this.driver.deleteObjects(found.tombstone);
      for (const claim of (await readMarks(this.driver, digest)).claim) claims.add(claim);
    }
    await this.claimsGone(digest, [...claims]);
    const info = await unlessMissing(() => this.driver.stat(layout.blobData(digest)));
    return !info || info.isDir;
  }

  /** Waits while any of these claims on the blob stands: its collector is deleting the blob or sparing it. */
  private async claimsGone(digest: Digest, claims: string[]): Promise<void> {
    const deadline = this.clock.now() + this.timing.claimWaitMs;
    let standing = claims;
    while (standing.length > 0 && this.clock.now() < deadline) {
      await this.clock.sleep(this.timing.claimPollMs);
      const now = new Set((await readMarks(this.driver, digest)).claim);
      standing = standing.filter((c) => now.has(c));
    }
  }
}

/** A blob's marks (full paths), by kind. */
export type BlobMarks = Record<GcMarkKind, string[]>;

const MARK_NAME = new RegExp(`^(${GC_MARK_KINDS.join("|")})-[A-Za-z0-9-]+$`);

/** One listing of the blob's marks (a mark being written, not yet in place, is not one). */
export async function readMarks(driver: StorageDriver, digest: Digest): Promise<BlobMarks> {
  const marks: BlobMarks = { tombstone: [], claim: [], writer: [] };
  for (const path of await listIfPresent(driver, gcPaths.marks(digest))) {
    const kind = MARK_NAME.exec(path.slice(path.lastIndexOf("/") + 1))?.[1] as GcMarkKind | undefined;
    if (kind) marks[kind].push(path);
  }
  return marks;
}
