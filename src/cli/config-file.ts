import type { RegistryConfig } from "../config/config.js";
import { formatProblem, loadConfig } from "../config/load.js";
import type { Problem } from "../config/validate.js";

/** Says on stderr why a command refuses its configuration, a line per problem. */
export function reportProblems(problems: Problem[]): void {
  for (const problem of problems) process.stderr.write(`config error: ${formatProblem(problem)}\n`);
}

/** Loads a command's configuration; when it is refused, says why on stderr and returns undefined. */
export async function loadOrReport(path: string | undefined): Promise<{ config: RegistryConfig; warnings: Problem[] } | undefined> {
  const loaded = await loadConfig(path);
  if (loaded.ok) return loaded;
  reportProblems(loaded.errors);
  return undefined;
}
