import { ConfigError, NotYetAvailable } from "../refusal.js";
import type { Problem } from "./validate.js";

/** Every problem that keeps `serve` from starting: the list `config check` prints too. */
export class ConfigRefused extends Error {
  constructor(readonly problems: Problem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join("; "));
    this.name = "ConfigRefused";
  }
}

/** A refusal as the problem `config check` lists and serve reports; anything else is said at `path`. */
export function problemOf(err: unknown, path: string): Problem {
  if (!(err instanceof ConfigError)) return { path, message: err instanceof Error ? err.message : String(err) };
  return { path: err.path, message: err.message, ...(err instanceof NotYetAvailable ? { transient: true } : {}) };
}
