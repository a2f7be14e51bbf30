import { pino, type DestinationStream, type Logger } from "pino";
import { build as prettyStream } from "pino-pretty";
import type { RegistryConfig } from "./config/config.js";

/** Keys whose values are never written, wherever they appear in a log line's object (two levels). */
const SECRET_KEYS = ["authorization", "password", "secret", "secretkey", "accesskeysecret", "token", "sessiontoken", "headers"];

/**
 * The last line of defence, on the serialized line: credentials inside URLs (user:pass@host) and
 * Authorization values that ended up in a message or an error's text.
 */
const SECRET_PATTERNS: [RegExp, string][] = [
  [/(\/\/)[^/@\s"]+:[^/@\s"]*@/g, "$1[redacted]@"],
  [/\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]{8,}/gi, "$1 [redacted]"],
];

export function scrubSecrets(line: string): string {
  let out = line;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** log.formatter text (or unset, on a terminal) is for people; json and logstash for collectors. */
function humanReadable(formatter: string | undefined, fd: number): boolean {
  if (formatter !== undefined) return formatter === "text";
  return fd === 2 ? process.stderr.isTTY === true : process.stdout.isTTY === true;
}

/**
 * The process's logger: log.level and log.fields from the configuration, on stderr, one JSON
 * object per line (or pretty for a terminal), with secrets removed.
 */
export function createLogger(config: Pick<RegistryConfig, "log">, fd = 2): Logger {
  const destination: DestinationStream = humanReadable(config.log.formatter, fd)
    ? prettyStream({ destination: fd, sync: true, colorize: fd === 2 ? process.stderr.isTTY === true : false, translateTime: "SYS:HH:MM:ss.l" })
    : pino.destination({ dest: fd, sync: false });
  return pino(
    {
      level: config.log.level,
      base: { ...config.log.fields },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: SECRET_KEYS.flatMap((key) => [key, `*.${key}`]), censor: "[redacted]" },
      hooks: { streamWrite: scrubSecrets },
    },
    destination,
  );
}
