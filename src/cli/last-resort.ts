import type { Logger } from "pino";

/**
 * The last resort. Every stream and promise of the server has an owner that turns its failure
 * into a response; an exception or rejection that reaches the process is therefore a bug. It
 * is logged (the line is flushed on exit) and the process exits 1, so that its supervisor
 * starts a clean one, rather than serving on in a state nobody planned for.
 */
export function exitOnUnhandled(log: Logger): void {
  const fatal = (kind: string) => (err: unknown) => {
    log.fatal({ err }, `${kind}: this is a bug of lain-registry; exiting`);
    process.exit(1);
  };
  process.on("uncaughtException", fatal("uncaught exception"));
  process.on("unhandledRejection", fatal("unhandled rejection"));
}
