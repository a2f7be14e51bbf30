import { parseDuration } from "../config/duration.js";
import { DEFAULT_CONFIG_PATH } from "../config/load.js";
import { collectGarbage } from "../gc/collect.js";
import { createDriver } from "../storage/factory.js";
import { loadOrReport } from "./config-file.js";
import { formatBytes } from "./format.js";
import { usageError } from "./help.js";

/**
 * `lain-registry garbage-collect`: distribution's garbage-collect on the same layout, safe to run
 * against the store of a serving registry. Exit 0 done, 1 failed, 2 usage or configuration error.
 */
export async function garbageCollectCommand(args: string[]): Promise<number> {
  const flags = new Set(["--dry-run", "--delete-untagged"]);
  const values = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (flags.has(arg)) values.set(arg, "true");
    else if ((arg === "--delay" || arg === "--settle") && args[i + 1] !== undefined) values.set(arg, args[++i] ?? "");
    else if (!arg.startsWith("--") && positional.length === 0) positional.push(arg);
    else return usageError("garbage-collect", `unexpected argument ${arg}`);
  }
  const loaded = await loadOrReport(positional[0] ?? DEFAULT_CONFIG_PATH);
  if (!loaded) return 2;
  // --delay overrides storage.gc.delay.
  const delay = values.get("--delay");
  const delayMs = delay === undefined ? loaded.config.storage.gc.delayMs : parseDuration(delay);
  const settleMs = parseDuration(values.get("--settle") ?? "5s");
  if (delayMs === undefined || settleMs === undefined) return usageError("garbage-collect", "--delay and --settle take durations such as 30s or 1h");
  const driver = await createDriver(loaded.config.storage);
  await driver.verify?.();
  const dryRun = values.has("--dry-run");
  const tty = process.stderr.isTTY;
  const report = await collectGarbage(driver, {
    dryRun,
    deleteUntagged: values.has("--delete-untagged"),
    delayMs,
    settleMs,
    progress: tty ? (phase, counts) => process.stderr.write(`\r${phase}: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ")}   `) : undefined,
  });
  if (tty) process.stderr.write("\n");
  for (const manifest of report.manifestsDeleted) process.stdout.write(`${dryRun ? "would delete" : "deleted"} manifest ${manifest}\n`);
  for (const blob of report.blobsDeleted) process.stdout.write(`${dryRun ? "would delete" : "deleted"} blob ${blob}\n`);
  process.stdout.write(
    `${report.repositories} repositories, ${report.manifests} manifests, ${report.blobsKept} blobs kept; ` +
      `${dryRun ? "would free" : "freed"} ${report.blobsDeleted.length} blobs, ${formatBytes(report.bytesFreed)}, ${report.manifestsDeleted.length} untagged manifests\n`,
  );
  return 0;
}
