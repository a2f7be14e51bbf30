import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../package-root.js";
import { toConfig, type RegistryConfig } from "./config.js";
import { applyEnvironment } from "./env.js";
import { CONFIG_SPEC } from "./schema.js";
import { validate, type Problem } from "./validate.js";
import { parseYaml, type YAMLException } from "./yaml.js";

/** config/config.yml of the package: the quick start's configuration. */
export const DEFAULT_CONFIG_PATH = join(PACKAGE_ROOT, "config", "config.yml");

export type LoadResult =
  | { ok: true; config: RegistryConfig; warnings: Problem[] }
  | { ok: false; errors: Problem[]; warnings: Problem[] };

/**
 * YAML reserves "@" and "`": a value starting with one must be quoted. js-yaml reports it as
 * bad indentation; say what it is instead.
 */
function reservedStart(source: string, e: YAMLException): string | undefined {
  const line = e.mark ? source.split(/\r?\n/)[e.mark.line] : undefined;
  const match = line ? /^\s*(?:-\s+)?([^\s:#][^:#]*):\s+([@`].*?)\s*$/.exec(line) : null;
  if (!match) return undefined;
  const [, key, value] = match;
  // The value itself is left out: it is often a password.
  return `the value of ${key} starts with ${JSON.stringify(value!.charAt(0))}, which YAML reserves: quote it (${key}: "${value!.charAt(0)}...")`;
}

/** Parses, applies REGISTRY_* overrides and validates a configuration document. */
export function parseConfig(source: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  let raw: unknown;
  try {
    raw = parseYaml(source) ?? {};
  } catch (err) {
    const e = err as YAMLException;
    const where = e.mark ? `line ${e.mark.line + 1}, column ${e.mark.column + 1}` : "";
    return { ok: false, errors: [{ path: where, message: `not valid YAML: ${reservedStart(source, e) ?? e.reason ?? e.message}` }], warnings: [] };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { ok: false, errors: [{ path: "", message: "the configuration must be a YAML map" }], warnings: [] };
  }
  const tree = raw as Record<string, unknown>;
  const unknownEnv = applyEnvironment(tree, env, CONFIG_SPEC);
  const findings = validate(CONFIG_SPEC, tree);
  const warnings = [...findings.warnings, ...unknownEnv];
  if (findings.errors.length > 0) return { ok: false, errors: findings.errors, warnings };
  return { ok: true, config: toConfig(tree), warnings };
}

export async function loadConfig(path: string = DEFAULT_CONFIG_PATH, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  let source: string;
  try {
    source = await readFile(path, "utf8");
  } catch (err) {
    return { ok: false, errors: [{ path, message: `cannot read: ${(err as Error).message}` }], warnings: [] };
  }
  return parseConfig(source, env);
}

export function formatProblem(problem: Problem): string {
  return problem.path ? `${problem.path}: ${problem.message}` : problem.message;
}
