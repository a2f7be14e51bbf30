import { pino, type DestinationStream, type Logger } from "pino";
import { createRequire } from "node:module";
import type { RegistryConfig } from "./config/config.js";

/**
 * Applied to every serialized line (so at any depth, in messages and error texts too, and for
 * the pretty output as well): values of secret keys, credentials inside URLs (user:pass@host),
 * and Authorization values. One pass of three patterns costs about 1 µs a line; pino's
 * wildcard redaction paths cost ten times that.
 */
const SECRET_PATTERNS: [RegExp, string][] = [
  [/"(authorization|password|secret|secretkey|accesskeysecret|token|sessiontoken)":"(?:[^"\\]|\\.)*"/gi, '"$1":"[redacted]"'],
  [/(\/\/)[^/@\s"]+:[^/@\s"]*@/g, "$1[redacted]@"],
  [/\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]{8,}/gi, "$1 [redacted]"],
];

export function scrubSecrets(line: string): string {
  let out = line;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/**
 * Lines waiting for stderr, at most. A reader slower than the log (a busy journal, a pipe read
 * now and then) once held the lines of every request in memory: 38 MiB of them after 140 s of a
 * soak at 3,500 requests a second, growing. Past this, new lines are dropped and counted
 * (registry_log_lines_dropped_total) rather than held.
 */
const BACKLOG_BYTES = 8 * 1024 * 1024;
let dropped = 0;

/** Log lines dropped so far because stderr was read slower than the log was written. */
export function droppedLogLines(): number {
  return dropped;
}

/** Where logs go: stderr, pretty when log.formatter is text (or unset, on a terminal), else JSON lines. */
function stderrDestination(formatter: string | undefined): DestinationStream {
  const terminal = process.stderr.isTTY === true;
  if (formatter === "text" || (formatter === undefined && terminal)) {
    // Loaded for a terminal only (a server logs JSON).
    const { build } = createRequire(import.meta.url)("pino-pretty") as typeof import("pino-pretty");
    return build({ destination: 2, sync: true, colorize: terminal, translateTime: "SYS:HH:MM:ss.l" });
  }
  // Written in batches of 4 KiB (one write per line cost the access log a tenth of a manifest
  // GET's CPU); a quiet registry's lines still reach the terminal or journal within a second.
  const destination = pino.destination({ dest: 2, sync: false, minLength: 4096, maxLength: BACKLOG_BYTES });
  destination.on("drop", (data: string) => {
    for (let i = data.indexOf("\n"); i >= 0; i = data.indexOf("\n", i + 1)) dropped++;
  });
  let told = 0;
  setInterval(() => {
    destination.flush();
    if (dropped === told) return;
    destination.write(`${JSON.stringify({ level: 40, time: new Date().toISOString(), msg: `${dropped - told} log lines dropped: stderr is read slower than the registry logs (log.accesslog.disabled writes far fewer)` })}\n`);
    told = dropped;
  }, 1000).unref();
  return destination;
}

/**
 * The process's logger: log.level and log.fields from the configuration, one line per entry,
 * with secrets removed.
 */
export function createLogger(config: Pick<RegistryConfig, "log">, destination = stderrDestination(config.log.formatter)): Logger {
  return pino(
    {
      level: config.log.level,
      base: { ...config.log.fields },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: { streamWrite: scrubSecrets },
    },
    destination,
  );
}
