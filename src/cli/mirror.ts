import { commandArgs } from "./args.js";
import { loadOrReport, reportProblems } from "./config-file.js";
import { prepare } from "./prepare.js";
import { createLogger } from "../log.js";
import { MirrorRegistry } from "../proxy/mirror.js";
import { prefetch } from "../proxy/prefetch.js";
import { parseReference } from "../registry/names.js";
import { Registry } from "../registry/registry.js";
import { formatBytes } from "./format.js";
import { usageError } from "./help.js";
import { registryOptions } from "./serve.js";

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
  const loaded = await loadOrReport(configPath);
  if (!loaded) return 2;
  const { config } = loaded;
  const invalid = references.filter((r) => !parseReference(r));
  if (!config.proxy || invalid.length > 0) {
    process.stderr.write(config.proxy ? `not name:tag or name@digest: ${invalid.join(" ")}\n` : `${configPath} has no proxy section\n`);
    return 2;
  }
  // The mirror's own store and spool, as serve makes them.
  const { prepared, findings } = await prepare(config, "serve");
  if (!prepared) {
    reportProblems(findings.errors);
    return 2;
  }
  const { driver } = prepared;
  await driver.verify?.();
  const log = createLogger(config);
  const registry = new MirrorRegistry(new Registry(driver, registryOptions(config, driver, log)), config.proxy, log);
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
