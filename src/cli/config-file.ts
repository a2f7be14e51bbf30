import type { RegistryConfig } from "../config/config.js";
import { formatProblem, loadConfig } from "../config/load.js";
import type { Problem } from "../config/validate.js";

/** Loads a command's configuration; when it is refused, says why on stderr and returns undefined. */
export async function loadOrReport(path: string | undefined): Promise<{ config: RegistryConfig; warnings: Problem[] } | undefined> {
  const loaded = await loadConfig(path);
  if (loaded.ok) return loaded;
  for (const problem of loaded.errors) process.stderr.write(`config error: ${formatProblem(problem)}\n`);
  return undefined;
}
