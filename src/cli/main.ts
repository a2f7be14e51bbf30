#!/usr/bin/env node
import { VERSION } from "../version.js";
import { configCheck } from "./config-check.js";
import { garbageCollectCommand } from "./garbage-collect.js";
import { healthcheckCommand } from "./healthcheck.js";
import { COMMANDS, commandHelp, USAGE } from "./help.js";
import { mirrorCommand } from "./mirror.js";
import { serve } from "./serve.js";
import { upstreamsCommand } from "./upstreams.js";
import { tokenCommand } from "./token.js";

type Run = (args: string[]) => Promise<number>;

/** Each command by its name as typed; the handler gets the arguments after the name. */
const RUN: Record<string, Run> = {
  serve,
  "config check": configCheck,
  "mirror prefetch": mirrorCommand,
  upstreams: upstreamsCommand,
  "garbage-collect": garbageCollectCommand,
  "token issue": tokenCommand,
  healthcheck: healthcheckCommand,
};

const wantsHelp = (args: string[]) => args.includes("--help") || args.includes("-h");

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === "--version" || first === "-v" || first === "version") {
    process.stdout.write(`lain-registry ${VERSION}\n`);
    return 0;
  }
  if (first === undefined || first === "--help" || first === "-h" || (first === "help" && rest.length === 0)) {
    process.stdout.write(USAGE);
    return first === undefined ? 2 : 0;
  }
  // `help NAME ...` is `NAME ... --help`.
  const words = first === "help" ? [...rest, "--help"] : argv;
  const command = COMMANDS.find((c) => c.name === words.slice(0, c.name.split(" ").length).join(" "));
  if (!command) {
    process.stderr.write(`unknown command: ${argv.join(" ")}\n\n${USAGE}`);
    return 2;
  }
  const args = words.slice(command.name.split(" ").length);
  if (wantsHelp(args)) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  return (RUN[command.name] as Run)(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`lain-registry: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
