import type { Problem } from "./validate.js";

/** A value the registry cannot serve with, named by its key path (`http.tls.key`, ...). */
export class ConfigError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Every problem that keeps `serve` from starting: the list `config check` prints too. */
export class ConfigRefused extends Error {
  constructor(readonly problems: Problem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join("; "));
    this.name = "ConfigRefused";
  }
}
