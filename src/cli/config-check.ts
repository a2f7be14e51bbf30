import { DEFAULT_CONFIG_PATH, formatProblem, loadConfig } from "../config/load.js";

/**
 * `lain-registry config check [config.yml]`: validates without starting. Exit 0 when the
 * configuration is usable (warnings allowed), 1 with every problem listed by key path.
 */
export async function configCheck(configPath: string | undefined): Promise<number> {
  const path = configPath ?? DEFAULT_CONFIG_PATH;
  const loaded = await loadConfig(path);
  for (const problem of loaded.warnings) process.stdout.write(`warning: ${formatProblem(problem)}\n`);
  if (!loaded.ok) {
    for (const problem of loaded.errors) process.stdout.write(`error: ${formatProblem(problem)}\n`);
    process.stdout.write(`${path}: ${loaded.errors.length} problem(s); the registry would not start\n`);
    return 1;
  }
  process.stdout.write(`${path}: OK (storage: ${loaded.config.storage.driver}, listening on ${loaded.config.http.addr})\n`);
  return 0;
}
