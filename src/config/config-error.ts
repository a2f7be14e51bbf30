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

/**
 * What is not there yet but may come without anyone changing the configuration: a store that
 * does not answer, a port another process holds, an address the machine does not have yet (a
 * reboot where the network or the store is late). serve exits 1 for it, so that its supervisor
 * tries again; a configuration wrong in itself exits 2, and no restart is tried.
 */
export class NotYetAvailable extends ConfigError {
  readonly transient = true;
}

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
