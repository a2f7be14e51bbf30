import { roomBytes, type Room } from "../config/room.js";
import { isPathNotFound, type StorageDriver, type StoreSpace } from "../storage/driver.js";
import { layout } from "../registry/layout.js";
import { reusedFor } from "../reused-answer.js";

/** Answers are reused this long, so health checks at any rate cost the store little. */
const FRESH_MS = 2000;

export interface StoreHealth {
  reachable: boolean;
  /** A store on local disk: the room left on its volume. */
  freeBytes?: number;
  totalBytes?: number;
  /** Why an operator should look: unreachable, full (a write failed for lack of space), or low. */
  error?: string;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** What the room left says to an operator: nothing while there is enough. */
function roomProblem(space: StoreSpace, minFree: Room): string | undefined {
  const room = `${mib(space.free)} free of ${mib(space.total)}`;
  if (space.fullSince) return `storage full: a write failed for lack of space at ${space.fullSince.toISOString()} (${room})`;
  const floor = roomBytes(minFree, space.total);
  return space.free < floor ? `storage low: ${room}, below storage.filesystem.minfree (${mib(floor)})` : undefined;
}

/**
 * Whether the store answers: a stat of the layout's root (absent is an answer too), never a blob;
 * on local disk also the room left, against storage.filesystem.minfree.
 */
export class StoreProbe {
  readonly check: () => Promise<StoreHealth> = reusedFor(FRESH_MS, () => this.probe());

  constructor(
    private readonly driver: StorageDriver,
    private readonly minFree: Room,
  ) {}

  private async probe(): Promise<StoreHealth> {
    try {
      await this.driver.stat(layout.root);
    } catch (err) {
      if (!isPathNotFound(err)) return { reachable: false, error: err instanceof Error ? err.message : String(err) };
    }
    const space = await this.driver.space?.().catch(() => undefined);
    if (!space) return { reachable: true };
    const problem = roomProblem(space, this.minFree);
    return { reachable: true, freeBytes: space.free, totalBytes: space.total, ...(problem ? { error: problem } : {}) };
  }
}
