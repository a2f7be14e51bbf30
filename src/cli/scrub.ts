import { Readable } from "node:stream";
import { peerConfig } from "../config/config.js";
import { createDriver } from "../config/storage-driver.js";
import { scrubStore, type Refetch, type ScrubProblem } from "../gc/scrub.js";
import { keepHeapNearLive } from "../memory.js";
import { UpstreamRegistry } from "../proxy/upstream.js";
import { commandArgs } from "./args.js";
import { loadOrReport } from "./config-file.js";
import { formatBytes } from "./format.js";
import { usageError } from "./help.js";

/** A blob from the peer, or else (a manifest's bytes are not a blob to distribution) the manifest. */
function refetchFrom(upstream: UpstreamRegistry): Refetch {
  return async (name, digest) => {
    const blob = await upstream.fetchBlob(name, digest);
    if (blob.kind === "found") return blob.body;
    const manifest = await upstream.fetchManifest(name, digest);
    return manifest.kind === "found" ? Readable.from([manifest.content]) : undefined;
  };
}

function describe(problem: ScrubProblem): string {
  const where = problem.where.map((w) => (w.tags.length > 0 ? w.tags.map((t) => `${w.repository}:${t}`).join(", ") : w.repository)).join(", ");
  const action = problem.action ? `: ${problem.action}${problem.actionDetail ? ` (${problem.actionDetail})` : ""}` : "";
  return `${problem.kind} ${problem.digest}${where ? ` in ${where}` : ""}: ${problem.detail}${action}`;
}

/**
 * `lain-registry scrub [config.yml] [--dry-run] [--rate MiB/s] [--repair] [--peer URL]`: checks
 * the store against itself, moves damaged blobs aside and, with --repair, fetches them again.
 * Exit 0 nothing wrong (or all repaired), 1 problems left, 2 usage or configuration error.
 */
export async function scrubCommand(args: string[]): Promise<number> {
  const parsed = commandArgs(args, { "dry-run": { type: "boolean" }, repair: { type: "boolean" }, peer: { type: "string" }, rate: { type: "string" } });
  if (typeof parsed === "string") return usageError("scrub", parsed);
  const values = parsed.values as { "dry-run"?: boolean; repair?: boolean; peer?: string; rate?: string };
  const rateMiBps = values.rate === undefined ? undefined : Number(values.rate);
  if (rateMiBps !== undefined && !(rateMiBps > 0)) return usageError("scrub", "--rate takes MiB/s, a number above 0");
  const loaded = await loadOrReport(parsed.config);
  if (!loaded) return 2;
  const { config } = loaded;
  const peer = values.peer !== undefined ? peerConfig(values.peer) : values.repair ? config.proxy : undefined;
  if (values.repair && !peer) return usageError("scrub", "--repair fetches from proxy.remoteurl: this configuration has no proxy section (or name one with --peer URL)");
  keepHeapNearLive();
  const driver = await createDriver(config.storage);
  await driver.verify?.();
  const upstream = peer && new UpstreamRegistry(peer);
  const dryRun = values["dry-run"] === true;
  const tty = process.stderr.isTTY;
  try {
    const report = await scrubStore(driver, {
      dryRun,
      rateMiBps,
      refetch: upstream && refetchFrom(upstream),
      progress: tty ? (phase, counts) => process.stderr.write(`\r${phase}: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ")}   `) : undefined,
    });
    if (tty) process.stderr.write("\n");
    for (const problem of report.problems) process.stdout.write(`${describe(problem)}\n`);
    const left = report.problems.filter((p) => p.action !== "repaired" && p.action !== "unlinked").length;
    process.stdout.write(
      `${report.blobs} blobs (${formatBytes(report.bytes)}), ${report.repositories} repositories, ${report.manifests} manifests checked: ` +
        `${report.problems.length} problem(s)${report.problems.length > 0 ? `, ${report.problems.length - left} repaired or unlinked` : ""}${dryRun ? " (dry run: nothing moved)" : ""}\n`,
    );
    return left > 0 ? 1 : 0;
  } finally {
    await upstream?.close();
  }
}
