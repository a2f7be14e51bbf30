import { DEFAULT_CONFIG_PATH, formatProblem, loadConfig } from "../config/load.js";
import { createDriver } from "../storage/factory.js";

/**
 * `lain-registry config check [--connect] [config.yml]`: validates without starting; with
 * --connect also tries the store. Exit 0 when the configuration is usable (warnings allowed),
 * 1 with every problem listed by key path.
 */
export async function configCheck(args: string[]): Promise<number> {
  const connect = args.includes("--connect");
  const path = args.find((a) => !a.startsWith("--")) ?? DEFAULT_CONFIG_PATH;
  const loaded = await loadConfig(path);
  for (const problem of loaded.warnings) process.stdout.write(`warning: ${formatProblem(problem)}\n`);
  if (!loaded.ok) {
    for (const problem of loaded.errors) process.stdout.write(`error: ${formatProblem(problem)}\n`);
    process.stdout.write(`${path}: ${loaded.errors.length} problem(s); the registry would not start\n`);
    return 1;
  }
  const { storage, http } = loaded.config;
  process.stdout.write(`${path}: OK (storage: ${storage.driver}, listening on ${http.addr})\n`);
  if (!connect) return 0;
  try {
    await (await createDriver(storage)).verify?.();
    process.stdout.write(`storage: reachable and usable (${storage.driver})\n`);
    return 0;
  } catch (err) {
    process.stdout.write(`error: storage: ${(err as Error).message}\n`);
    return 1;
  }
}
