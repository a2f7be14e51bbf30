import { parseDuration } from "../config/duration.js";
import { DEFAULT_CONFIG_PATH, formatProblem, loadConfig } from "../config/load.js";
import { collectGarbage } from "../gc/collect.js";
import { createDriver } from "../storage/factory.js";
import { formatBytes } from "./format.js";

const USAGE = "usage: lain-registry garbage-collect [config.yml] [--dry-run] [--delete-untagged] [--delay DURATION (storage.gc.delay, 1h)] [--settle 5s]\n";

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
    else {
      process.stderr.write(USAGE);
      return 2;
    }
  }
  const loaded = await loadConfig(positional[0] ?? DEFAULT_CONFIG_PATH);
  if (!loaded.ok) {
    for (const problem of loaded.errors) process.stderr.write(`config error: ${formatProblem(problem)}\n`);
    return 2;
  }
  // --delay overrides storage.gc.delay.
  const delay = values.get("--delay");
  const delayMs = delay === undefined ? loaded.config.storage.gc.delayMs : parseDuration(delay);
  const settleMs = parseDuration(values.get("--settle") ?? "5s");
  if (delayMs === undefined || settleMs === undefined) {
    process.stderr.write(`--delay and --settle take durations such as 30s or 1h\n${USAGE}`);
    return 2;
  }
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
