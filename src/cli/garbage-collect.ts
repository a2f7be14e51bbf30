import { parseDuration } from "../config/duration.js";
import { collectGarbage } from "../gc/collect.js";
import { keepHeapNearLive } from "../memory.js";
import { createDriver } from "../config/storage-driver.js";
import { commandArgs } from "./args.js";
import { loadOrReport } from "./config-file.js";
import { formatBytes, formatDuration } from "./format.js";
import { usageError } from "./help.js";

/**
 * `lain-registry garbage-collect`: distribution's garbage-collect on the same layout, safe to run
 * against the store of a serving registry. Exit 0 done, 1 failed, 2 usage or configuration error.
 */
export async function garbageCollectCommand(args: string[]): Promise<number> {
  const parsed = commandArgs(args, {
    "dry-run": { type: "boolean" },
    "delete-untagged": { type: "boolean" },
    delay: { type: "string" },
  });
  if (typeof parsed === "string") return usageError("garbage-collect", parsed);
  const values = parsed.values as { "dry-run"?: boolean; "delete-untagged"?: boolean; delay?: string };
  const loaded = await loadOrReport(parsed.config);
  if (!loaded) return 2;
  // --delay overrides storage.gc.delay.
  const delayMs = values.delay === undefined ? loaded.config.storage.gc.delayMs : parseDuration(values.delay);
  if (delayMs === undefined) return usageError("garbage-collect", "--delay takes a duration such as 30s or 1h");
  keepHeapNearLive();
  const driver = await createDriver(loaded.config.storage);
  await driver.verify?.();
  const dryRun = values["dry-run"] === true;
  const tty = process.stderr.isTTY;
  const report = await collectGarbage(driver, {
    dryRun,
    deleteUntagged: values["delete-untagged"] === true,
    delayMs,
    progress: tty ? (phase, counts) => process.stderr.write(`\r${phase}: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ")}   `) : undefined,
  });
  if (tty) process.stderr.write("\n");
  for (const manifest of report.manifestsDeleted) process.stdout.write(`${dryRun ? "would delete" : "deleted"} manifest ${manifest}\n`);
  for (const blob of report.blobsDeleted) process.stdout.write(`${dryRun ? "would delete" : "deleted"} blob ${blob}\n`);
  process.stdout.write(
    `${report.repositories} repositories, ${report.manifests} manifests, ${report.blobsKept} blobs kept; ` +
      `${dryRun ? "would free" : "freed"} ${report.blobsDeleted.length} blobs, ${formatBytes(report.bytesFreed)}, ${report.manifestsDeleted.length} untagged manifests; ` +
      `${report.blobsSpared - report.blobsRescued} unreferenced blobs younger than ${formatDuration(delayMs)} kept, ${report.blobsRescued} put to use while collecting\n`,
  );
  return 0;
}
