import { DEFAULT_CONFIG_PATH, formatProblem, loadConfig } from "../config/load.js";
import { UpstreamRegistry } from "../proxy/upstream.js";
import { createDriver } from "../storage/factory.js";

/**
 * `lain-registry config check [--connect] [config.yml]`: validates without starting; with
 * --connect also tries the store, and the mirror's peer. Exit 0 when the configuration is usable (warnings allowed),
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
  let failed = false;
  try {
    await (await createDriver(storage)).verify?.();
    process.stdout.write(`storage: reachable and usable (${storage.driver})\n`);
  } catch (err) {
    process.stdout.write(`error: storage: ${(err as Error).message}\n`);
    failed = true;
  }
  const { proxy } = loaded.config;
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
