import { isPathNotFound, type StorageDriver } from "../storage/driver.js";
import { layout } from "../storage/layout.js";

/** Answers are reused this long, so health checks at any rate cost the store little. */
const FRESH_MS = 2000;

export interface StoreHealth {
  reachable: boolean;
  error?: string;
}

/** Whether the store answers: a stat of the layout's root (absent is an answer too), never a blob. */
export class StoreProbe {
  private last: { at: number; result: Promise<StoreHealth> } | undefined;

  constructor(private readonly driver: StorageDriver) {}

  check(): Promise<StoreHealth> {
    if (this.last && Date.now() - this.last.at < FRESH_MS) return this.last.result;
    const result = this.driver.stat(layout.root).then(
      (): StoreHealth => ({ reachable: true }),
      (err: unknown): StoreHealth => (isPathNotFound(err) ? { reachable: true } : { reachable: false, error: err instanceof Error ? err.message : String(err) }),
    );
    this.last = { at: Date.now(), result };
    return result;
  }
}
