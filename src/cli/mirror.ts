import { commandArgs } from "./args.js";
import { loadOrReport, reportProblems } from "./config-file.js";
import { prepare } from "./prepare.js";
import { createLogger } from "../log.js";
import { MirrorRegistry } from "../proxy/mirror.js";
import { prefetch } from "../proxy/prefetch.js";
import { Writeback } from "../proxy/writeback.js";
import { WritebackJournal, type WriteEntry } from "../proxy/writeback-journal.js";
import { parseReference } from "../registry/names.js";
import { Registry } from "../registry/registry.js";
import { formatBytes, formatDuration } from "./format.js";
import { usageError } from "./help.js";
import { registryOptions } from "./serve.js";

/** The mirror a configuration serves, over its own store and spool, as serve makes it; undefined after reporting why not. */
async function openMirror(configPath: string): Promise<MirrorRegistry | undefined> {
  const loaded = await loadOrReport(configPath);
  if (!loaded) return undefined;
  const { config } = loaded;
  if (!config.proxy) {
    process.stderr.write(`${configPath} has no proxy section\n`);
    return undefined;
  }
  const { prepared, findings } = await prepare(config, "serve");
  if (!prepared) {
    reportProblems(findings.errors);
    return undefined;
  }
  const { driver } = prepared;
  await driver.verify?.();
  const log = createLogger(config);
  return new MirrorRegistry(new Registry(driver, registryOptions(config, driver, log)), config.proxy, log);
}

/**
 * `lain-registry mirror prefetch [--config config.yml] name:tag|name@digest ...`: fetches images
 * from the peer into the mirror's store (safe while the mirror serves: blobs land by atomic
 * rename). Exit 0 when every reference is cached, 1 when one failed, 2 on a usage error.
 */
export async function mirrorCommand(args: string[]): Promise<number> {
  const parsed = commandArgs(args, {}, "references");
  if (typeof parsed === "string") return usageError("mirror prefetch", parsed);
  const { config: configPath, positionals: references } = parsed;
  if (references.length === 0) return usageError("mirror prefetch", "name at least one reference");
  const invalid = references.filter((r) => !parseReference(r));
  if (invalid.length > 0) {
    process.stderr.write(`not name:tag or name@digest: ${invalid.join(" ")}\n`);
    return 2;
  }
  const registry = await openMirror(configPath);
  if (!registry) return 2;
  let failed = 0;
  const progress = process.stderr.isTTY ? (text: string, i: number) => process.stderr.write(`\rprefetching ${i + 1}/${references.length}: ${text} ...\x1b[K`) : undefined;
  try {
    for (const [i, text] of references.entries()) {
      progress?.(text, i);
      try {
        const report = await prefetch(registry, parseReference(text)!);
        const fetched = report.fetchedBytes > 0 ? `fetched ${formatBytes(report.fetchedBytes)}` : "already cached";
        const stale = report.stale ? ` (stale: ${report.stale})` : "";
        if (progress) process.stderr.write("\r\x1b[K");
        process.stdout.write(`${text} ${report.digest}: ${report.manifests} manifest(s), ${report.blobs} blob(s), ${fetched}${stale}\n`);
      } catch (err) {
        failed++;
        if (progress) process.stderr.write("\r\x1b[K");
        process.stdout.write(`${text}: failed: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  } finally {
    await registry.close();
  }
  return failed > 0 ? 1 : 0;
}

/** One journal entry as a line: what, and how long it has waited. */
function describe(entry: WriteEntry, now: number): string {
  const waited = formatDuration(Math.max(0, now - Date.parse(entry.at)));
  if (entry.kind === "delete") return `delete ${entry.name}@${entry.digest} (${waited} ago)`;
  if (entry.kind === "untag") return `untag ${entry.name}:${entry.tag} (was ${entry.digest}, ${waited} ago)`;
  const tag = entry.tag === undefined ? "" : `:${entry.tag}`;
  const base = entry.tag === undefined ? "" : `, over ${entry.base ?? "no tag"}`;
  return `push ${entry.name}${tag} ${entry.digest} (${waited} ago${base})`;
}

/**
 * `lain-registry mirror writeback [config.yml] [--replay]`: a standby's journal of the writes it
 * took while its peer was down, and what the replay decided against; `--replay` replays it now.
 * Exit 0 nothing waits (or, without --replay, the journal was shown), 1 entries remain after
 * --replay or a journal file is unreadable, 2 usage or configuration error.
 */
export async function writebackCommand(args: string[]): Promise<number> {
  const parsed = commandArgs(args, { replay: { type: "boolean" } });
  if (typeof parsed === "string") return usageError("mirror writeback", parsed);
  const registry = await openMirror(parsed.config);
  if (!registry) return 2;
  const writeback = registry.writeback ?? new Writeback(new WritebackJournal(registry.local.driver), registry.local, registry.upstream, registry.log, () => undefined);
  try {
    const now = Date.now();
    const { entries, unreadable } = await writeback.journal.entries();
    process.stdout.write(`journal: ${entries.length} entr${entries.length === 1 ? "y" : "ies"} waiting for ${registry.upstream.url}\n`);
    for (const { entry } of entries) process.stdout.write(`  ${describe(entry, now)}\n`);
    for (const key of unreadable) process.stdout.write(`  unreadable: ${key} (left in place)\n`);
    const decided = await writeback.journal.conflicts();
    if (decided.length > 0) process.stdout.write(`decided against: ${decided.length}\n`);
    for (const c of decided) process.stdout.write(`  ${c.result}: ${describe(c.entry, now)}, the upstream had ${c.upstream ?? "nothing"}: ${c.reason}\n`);
    if (!parsed.values.replay) return unreadable.length > 0 ? 1 : 0;
    const report = await writeback.replay();
    const { results } = report;
    process.stdout.write(`replayed: ${results.written} written, ${results.present} present already, ${results.conflict} conflict(s), ${results.dropped} dropped\n`);
    if (report.error) process.stdout.write(`stopped: ${report.error}\n`);
    return writeback.state().pending > 0 || unreadable.length > 0 ? 1 : 0;
  } finally {
    await registry.close();
  }
}
