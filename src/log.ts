import { pino, type Logger } from "pino";
import type { RegistryConfig } from "./config/config.js";

/** JSON logs on stderr with log.level and log.fields from the configuration. */
export function createLogger(config: Pick<RegistryConfig, "log">): Logger {
  return pino(
    {
      level: config.log.level,
      base: { ...config.log.fields },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ["req.headers.authorization", "*.password", "*.secret"], censor: "[redacted]" },
    },
    pino.destination(2),
  );
}
