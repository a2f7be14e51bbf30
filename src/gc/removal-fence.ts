import { randomUUID } from "node:crypto";
import { isPathNotFound, StorageUnavailableError, type StorageDriver } from "../storage/driver.js";
import { systemClock, type Clock } from "./clock.js";
import { gcPaths } from "./paths.js";

/**
 * The removal fence: no descriptor cache, in any instance sharing the store, answers for blob
 * data or a link removed since it read it. Whoever removes rewrites one small object (its
 * epoch) first, waits `noticeMs`, and keeps rewriting it every `heartbeatMs` until done; every
 * cache uses its entries only while its last read of the epoch is fresher than `freshMs` and
 * the epoch has been unchanged for `quietMs`. The argument, and what it assumes of the store:
 * docs/design/gc-safety.md#the-descriptor-cache-and-removals.
 */
export interface FenceTiming {
  pollMs: number;
  freshMs: number;
  quietMs: number;
  noticeMs: number;
  heartbeatMs: number;
  maxGapMs: number;
}

/**
 * A read every half second keeps a cache trusted while reads of the epoch take up to 0.5 s
 * (pollMs + 2 reads <= freshMs): S3 and OSS answer far faster.
 */
export const FENCE_TIMING: FenceTiming = {
  pollMs: 500,
  freshMs: 1500,
  quietMs: 5000,
  noticeMs: 2000,
  heartbeatMs: 500,
  maxGapMs: 2500,
};

/** A remover that cannot write the epoch this long gives up: nothing is removed. */
const ANNOUNCE_TIMEOUT_MS = 30_000;
/** How often a removal waiting for the fence looks at it again. */
const READY_CHECK_MS = 50;

async function readEpoch(driver: StorageDriver): Promise<string> {
  try {
    return (await driver.getContent(gcPaths.removalEpoch)).toString("utf8");
  } catch (err) {
    // Before the first removal ever announced: a state of its own, like any token.
    if (isPathNotFound(err)) return "";
    throw err;
  }
}

/** The reader's side: what this instance last learnt of removals in the store. */
export class RemovalWatch {
  private token: string | undefined;
  /** When the first read that returned `token` ended. */
  private quietSince = Number.POSITIVE_INFINITY;
  /** When the latest successful read began. */
  private lastRead = Number.NEGATIVE_INFINITY;
  private stopped = false;

  constructor(
    private readonly driver: StorageDriver,
    /** Told when the token changes: everything cached so far must go. */
    private readonly changed: () => void,
    private readonly timing: FenceTiming = FENCE_TIMING,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Reads now and every pollMs, one read at a time, until stopped. */
  start(): void {
    void (async () => {
      while (!this.stopped) {
        await this.poll();
        await this.clock.sleep(this.timing.pollMs, true);
      }
    })();
  }

  stop(): void {
    this.stopped = true;
  }

  /** One read of the epoch; a failed read changes nothing (and trust lapses after freshMs). */
  async poll(): Promise<void> {
    const started = this.clock.now();
    let token: string;
    try {
      token = await readEpoch(this.driver);
    } catch {
      return;
    }
    if (token !== this.token) {
      this.token = token;
      this.quietSince = this.clock.now();
      this.changed();
    }
    this.lastRead = started;
  }

  /** Whether cached entries may be used (and new ones added) now. */
  trusted(): boolean {
    return (
      this.token !== undefined &&
      this.clock.now() - this.lastRead <= this.timing.freshMs &&
      this.lastRead - this.quietSince >= this.timing.quietMs
    );
  }

  /**
   * When the read began that shows no removal under way or announced before it (the start of
   * the latest read, while trusted): nothing announced after it removes anything before
   * noticeMs from then. Undefined when no such read is fresh.
   */
  quietRead(): number | undefined {
    return this.trusted() ? this.lastRead : undefined;
  }

  /** Taken before a store read whose result may be cached: undefined when it may not. */
  snapshot(): string | undefined {
    return this.trusted() ? this.token : undefined;
  }

  /** Whether a result read since `snapshot` was taken may be cached now. */
  holds(snapshot: string | undefined): boolean {
    return snapshot !== undefined && snapshot === this.token && this.trusted();
  }
}

/** The remover's side: one per process and store; removals share its heartbeat. */
export class RemovalFence {
  private holders = 0;
  private beating = false;
  /** When the first rewrite of the unbroken run of rewrites ended. */
  private standingSince: number | undefined;
  /** When the latest successful rewrite began. */
  private lastRewrite: number | undefined;
  private lastError: unknown;
  private noticesGiven = 0;
  /** The rewrite under way, if any: it may outlive the last holder's release. */
  private rewriting: Promise<void> | undefined;

  constructor(
    private readonly driver: StorageDriver,
    private readonly timing: FenceTiming = FENCE_TIMING,
    /** Told when a removal outlasted the heartbeat (the argument's one assumption failed). */
    private readonly warn: (message: string) => void = (message) => process.emitWarning(message),
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * Keeps the fence standing until the returned function is called: a collector holds it over
   * a whole sweep, so the notice is given once, not once per blob.
   */
  hold(): () => void {
    this.holders++;
    if (!this.beating) void this.beat();
    let released = false;
    return () => {
      if (!released) this.holders--;
      released = true;
    };
  }

  /** Runs `removal` once every cache sharing the store has been told; see the module comment. */
  async remove<T>(removal: () => Promise<T>): Promise<T> {
    const release = this.hold();
    try {
      await this.ready();
      const result = await removal();
      if (!this.beatingFresh()) {
        // The heartbeat stalled while the removal ran: start over, so later removals wait again.
        this.standingSince = undefined;
        this.warn(`a removal outlasted the removal fence's heartbeat (${gcPaths.removalEpoch}); descriptor caches may have vouched for it briefly`);
      }
      return result;
    } finally {
      release();
    }
  }

  /**
   * How many notices this fence has given: a new one each time its rewrites start over (first,
   * or after a gap). While one notice stands, no instance's watch has seen the fence quiet (see
   * collection-guard.ts); a remover relying on what it read under a notice removes only while
   * that notice still stands.
   */
  get notices(): number {
    return this.noticesGiven;
  }

  /** Resolves once no rewrite of the epoch is under way (after the last release, none starts). */
  async settled(): Promise<void> {
    await this.rewriting;
  }

  private beatingFresh(): boolean {
    return this.lastRewrite !== undefined && this.clock.now() - this.lastRewrite < this.timing.maxGapMs;
  }

  /** Resolves once a removal may run: the notice has been given and the heartbeat is fresh. */
  async ready(): Promise<void> {
    const deadline = this.clock.now() + ANNOUNCE_TIMEOUT_MS;
    for (;;) {
      if (this.standingSince !== undefined && this.beatingFresh()) {
        const wait = this.standingSince + this.timing.noticeMs - this.clock.now();
        if (wait <= 0) return;
        await this.clock.sleep(wait);
        continue;
      }
      if (this.clock.now() > deadline) throw new StorageUnavailableError(gcPaths.removalEpoch, this.lastError ?? new Error("no rewrite of the removal epoch succeeded"));
      await this.clock.sleep(READY_CHECK_MS);
    }
  }

  private async beat(): Promise<void> {
    this.beating = true;
    try {
      while (this.holders > 0) {
        this.rewriting = this.rewrite();
        await this.rewriting;
        await this.clock.sleep(this.timing.heartbeatMs, true);
      }
    } finally {
      this.beating = false;
    }
  }

  private async rewrite(): Promise<void> {
    const started = this.clock.now();
    try {
      // Transient: a sync per heartbeat on a busy disk stalls the fence, and a token lost in a
      // crash reads as a change, as a new one would.
      await this.driver.putContent(gcPaths.removalEpoch, Buffer.from(randomUUID()), true);
    } catch (err) {
      this.lastError = err;
      return;
    }
    const ended = this.clock.now();
    // A gap too long between two rewrites breaks the fence: the notice is given again.
    if (this.standingSince === undefined || this.lastRewrite === undefined || ended - this.lastRewrite >= this.timing.maxGapMs) {
      this.standingSince = ended;
      this.noticesGiven++;
    }
    this.lastRewrite = started;
  }
}
