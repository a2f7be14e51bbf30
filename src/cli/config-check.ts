import { ConfigError } from "../config/config-error.js";
import { formatProblem, loadConfig } from "../config/load.js";
import type { Problem } from "../config/validate.js";
import { UpstreamRegistry } from "../proxy/upstream.js";
import { commandArgs } from "./args.js";
import { usageError } from "./help.js";
import { prepare } from "./prepare.js";

/**
 * `lain-registry config check [--connect] [config.yml]`: validates, and builds on this machine
 * what serve would build (files, directories, addresses), changing nothing on disk; with
 * --connect also tries the store and the mirror's peer. Exit 0 when serve would serve
 * (warnings allowed), 1 with every problem listed by key path.
 */
export async function configCheck(args: string[]): Promise<number> {
  const parsed = commandArgs(args, { connect: { type: "boolean" } });
  if (typeof parsed === "string") return usageError("config check", parsed);
  const connect = parsed.values.connect === true;
  const path = parsed.config;
  const loaded = await loadConfig(path);
  const warnings: Problem[] = [...loaded.warnings];
  let errors: Problem[] = loaded.ok ? [] : loaded.errors;
  const prepared = loaded.ok ? await prepare(loaded.config, "check") : undefined;
  if (prepared) {
    warnings.push(...prepared.findings.warnings);
    errors = prepared.findings.errors;
  }
  for (const problem of warnings) process.stdout.write(`warning: ${formatProblem(problem)}\n`);
  for (const problem of errors) process.stdout.write(`error: ${formatProblem(problem)}\n`);
  if (!loaded.ok || !prepared?.prepared) {
    process.stdout.write(`${path}: ${errors.length} problem(s); the registry would not start\n`);
    return 1;
  }
  const { storage, http, proxy } = loaded.config;
  process.stdout.write(`${path}: OK (storage: ${storage.driver}, listening on ${http.addr})\n`);
  if (!connect) return 0;
  let failed = false;
  try {
    await prepared.prepared.driver.verify?.();
    process.stdout.write(`storage: reachable and usable (${storage.driver})\n`);
  } catch (err) {
    // A root directory that serve would create is not a failure: prepare has said so.
    const missingRoot = storage.driver === "filesystem" && warnings.some((w) => w.path === "storage.filesystem.rootdirectory");
    if (missingRoot) process.stdout.write("storage: the root directory does not exist yet; serve will create it\n");
    else {
      process.stdout.write(`error: ${err instanceof ConfigError ? err.path : "storage"}: ${(err as Error).message}\n`);
      failed = true;
    }
  }
  if (proxy) {
    const upstream = new UpstreamRegistry(proxy);
    try {
      process.stdout.write(`proxy: ${await upstream.check()}\n`);
    } catch (err) {
      process.stdout.write(`error: proxy: ${(err as Error).message}\n`);
      failed = true;
    } finally {
      await upstream.close();
    }
  }
  return failed ? 1 : 0;
}
