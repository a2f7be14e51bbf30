import type { Logger } from "pino";
import { deleteIfPresent, unlessMissing, type StorageDriver } from "../storage/driver.js";
import { layout } from "../registry/layout.js";
import { repeat } from "./repeat.js";

export interface PurgeOptions {
  /** Sessions started longer ago than this are abandoned. */
  ageMs: number;
  /** Report what would go, remove nothing. */
  dryRun: boolean;
}

export interface PurgeReport {
  /** `<repository>/_uploads/<id>` of each session removed (or that would be, in a dry run). */
  purged: string[];
  kept: number;
}

const UPLOADS = "_uploads";

/** Every `_uploads` directory below the repositories root (a repository may have no manifest yet). */
async function* uploadDirs(driver: StorageDriver, dir: string): AsyncGenerator<string> {
  const children = (await unlessMissing(() => driver.list(dir))) ?? [];
  for (const child of children.sort()) {
    const name = child.slice(child.lastIndexOf("/") + 1);
    if (name === UPLOADS) yield child;
    else if (!name.startsWith("_")) yield* uploadDirs(driver, child);
  }
}

/** When a session started: its `startedat`, else the data's modification time. */
async function startedAt(driver: StorageDriver, session: string): Promise<Date | undefined> {
  const text = await unlessMissing(() => driver.getContent(`${session}/startedat`));
  const parsed = text ? new Date(text.toString("utf8").trim()) : undefined;
  if (parsed && !Number.isNaN(parsed.getTime())) return parsed;
  return (await unlessMissing(() => driver.stat(`${session}/data`)))?.modTime;
}

/**
 * storage.maintenance.uploadpurging: removes upload sessions older than the age, as
 * distribution's purger does, on every driver (deleting a session on S3/OSS also aborts its
 * multipart upload). A session without any date is left alone.
 */
export async function purgeUploads(driver: StorageDriver, options: PurgeOptions, now = new Date()): Promise<PurgeReport> {
  const report: PurgeReport = { purged: [], kept: 0 };
  for await (const dir of uploadDirs(driver, layout.repositoriesRoot)) {
    for (const session of (await unlessMissing(() => driver.list(dir))) ?? []) {
      const started = await startedAt(driver, session);
      if (!started || now.getTime() - started.getTime() <= options.ageMs) {
        report.kept++;
        continue;
      }
      if (options.dryRun || (await deleteIfPresent(driver, session))) report.purged.push(session.slice(layout.repositoriesRoot.length + 1));
    }
  }
  return report;
}

/** Runs the purge at start and then every interval (skipping runs while `paused`), logging what it did. */
export function schedulePurging(driver: StorageDriver, options: PurgeOptions & { intervalMs: number; paused: () => boolean }, log: Logger): () => void {
  const purge = async () => {
    try {
      const report = await purgeUploads(driver, options);
      log.info({ purged: report.purged.length, kept: report.kept, dryRun: options.dryRun, sessions: report.purged.slice(0, 20) }, "upload purging done");
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, "upload purging failed; retrying next interval");
    }
  };
  return repeat(options.intervalMs, purge, { paused: options.paused, immediately: true });
}
