import { problemOf } from "../config/config-error.js";
import { formatProblem, loadConfig } from "../config/load.js";
import type { Problem } from "../config/validate.js";
import type { RegistryConfig } from "../config/config.js";
import { UpstreamRegistry } from "../proxy/upstream.js";
import type { StorageDriver } from "../storage/driver.js";
import { commandArgs } from "./args.js";
import { usageError } from "./help.js";
import { prepare } from "./prepare.js";

/**
 * `lain-registry config check [--connect] [config.yml]`: validates, and builds on this machine
 * what serve would build (files, directories, addresses), changing nothing on disk; with
 * --connect also tries the store and the mirror's peer. Exit 0 when serve would serve
 * (warnings allowed), 1 with every problem listed by key path; "OK" is the last line, and only then.
 */
export async function configCheck(args: string[]): Promise<number> {
  const parsed = commandArgs(args, { connect: { type: "boolean" } });
  if (typeof parsed === "string") return usageError("config check", parsed);
  const connect = parsed.values.connect === true;
  const path = parsed.config;
  const loaded = await loadConfig(path);
  const warnings: Problem[] = [...loaded.warnings];
  const prepared = loaded.ok ? await prepare(loaded.config, "check") : undefined;
  warnings.push(...(prepared?.findings.warnings ?? []));
  const errors: Problem[] = [...(loaded.ok ? (prepared?.findings.errors ?? []) : loaded.errors)];
  if (loaded.ok && prepared?.prepared && connect) errors.push(...(await connectChecks(loaded.config, prepared.prepared.driver, warnings)));
  for (const problem of warnings) process.stdout.write(`warning: ${formatProblem(problem)}\n`);
  for (const problem of errors) process.stdout.write(`error: ${formatProblem(problem)}\n`);
  if (!loaded.ok || !prepared?.prepared || errors.length > 0) {
    const consequence = loaded.ok && prepared?.prepared ? "the configuration is valid, but the registry cannot serve until they are fixed" : "the registry would not start";
    process.stdout.write(`${path}: ${errors.length} problem(s); ${consequence}\n`);
    return 1;
  }
  const { storage, http } = loaded.config;
  process.stdout.write(`${path}: OK (storage: ${storage.driver}, listening on ${http.addr})\n`);
  return 0;
}

/** --connect: the store and the mirror's peer, tried as serve would use them; what they say is printed as it comes. */
async function connectChecks(config: RegistryConfig, driver: StorageDriver, warnings: Problem[]): Promise<Problem[]> {
  const errors: Problem[] = [];
  const { storage, proxy } = config;
  try {
    await driver.verify?.();
    process.stdout.write(`storage: reachable and usable (${storage.driver})\n`);
  } catch (err) {
    // A root directory that serve would create is not a failure: prepare has said so.
    const missingRoot = storage.driver === "filesystem" && warnings.some((w) => w.path === "storage.filesystem.rootdirectory");
    if (missingRoot) process.stdout.write("storage: the root directory does not exist yet; serve will create it\n");
    else errors.push(problemOf(err, "storage"));
  }
  if (proxy) {
    const upstream = new UpstreamRegistry(proxy);
    try {
      process.stdout.write(`proxy: ${await upstream.check()}\n`);
    } catch (err) {
      errors.push({ path: "proxy", message: (err as Error).message });
    } finally {
      await upstream.close();
    }
  }
  return errors;
}
