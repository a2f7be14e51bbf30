import { collectGarbage } from "../gc/collect.js";
import type { StorageDriver } from "../storage/driver.js";
import { storageReport, type StorageReport } from "./storage-report.js";

export type AnalysisState =
  | { state: "idle" }
  | { state: "running"; startedAt: string; phase: string; counts: Record<string, number> }
  | { state: "done"; startedAt: string; finishedAt: string; storage: StorageReport; gc: GcPreview }
  | { state: "failed"; startedAt: string; finishedAt: string; error: string };

/** What `garbage-collect --dry-run` reports. */
export interface GcPreview {
  blobs: number;
  bytes: number;
  blobsKept: number;
  manifests: number;
}

/**
 * The console's storage analysis: sizes per repository, then a garbage-collection dry run (it
 * writes nothing: pushes are never refused for it). One at a time, in the background; the state
 * is polled.
 */
export class StorageAnalysis {
  private current: AnalysisState = { state: "idle" };

  constructor(
    private readonly driver: StorageDriver,
    /** storage.gc.delay: blobs younger than this are not counted as garbage, as the CLI's default. */
    private readonly delayMs: number,
  ) {}

  get state(): AnalysisState {
    return this.current;
  }

  /** Starts an analysis unless one runs; answers the state either way. */
  start(): AnalysisState {
    if (this.current.state === "running") return this.current;
    const startedAt = new Date().toISOString();
    const running: AnalysisState & { state: "running" } = { state: "running", startedAt, phase: "sizes", counts: { repositories: 0 } };
    this.current = running;
    void this.run(running).then(
      (done) => (this.current = done),
      (err: unknown) => (this.current = { state: "failed", startedAt, finishedAt: new Date().toISOString(), error: err instanceof Error ? err.message : String(err) }),
    );
    return running;
  }

  private async run(running: AnalysisState & { state: "running" }): Promise<AnalysisState> {
    const storage = await storageReport(this.driver, 20, (repositories) => (running.counts = { repositories }));
    const report = await collectGarbage(this.driver, {
      dryRun: true,
      deleteUntagged: false,
      delayMs: this.delayMs,
      progress: (phase, counts) => {
        running.phase = `gc ${phase}`;
        running.counts = counts;
      },
    });
    return {
      state: "done",
      startedAt: running.startedAt,
      finishedAt: new Date().toISOString(),
      storage,
      gc: { blobs: report.blobsDeleted.length, bytes: report.bytesFreed, blobsKept: report.blobsKept, manifests: report.manifests },
    };
  }
}
