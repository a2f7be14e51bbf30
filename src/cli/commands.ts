/** The commands of `lain-registry`, by name (dist/cli/main.js loads this once the Node is one it supports). */
import { nearest } from "../config/suggest.js";
import { VERSION } from "../version.js";
import { COMMANDS, commandHelp, USAGE } from "./help.js";

type Run = (args: string[]) => Promise<number>;

/**
 * Each command by its name as typed; the handler gets the arguments after the name. Loaded on
 * demand: a process holds only its own command's code (serve without a proxy never loads the
 * upstream client, the container's healthcheck loads none of the server).
 */
const RUN: Record<string, () => Promise<Run>> = {
  serve: async () => (await import("./serve.js")).serve,
  "config check": async () => (await import("./config-check.js")).configCheck,
  "mirror prefetch": async () => (await import("./mirror.js")).mirrorCommand,
  "mirror writeback": async () => (await import("./mirror.js")).writebackCommand,
  upstreams: async () => (await import("./upstreams.js")).upstreamsCommand,
  "garbage-collect": async () => (await import("./garbage-collect.js")).garbageCollectCommand,
  scrub: async () => (await import("./scrub.js")).scrubCommand,
  retention: async () => (await import("./retention.js")).retentionCommand,
  "token issue": async () => (await import("./token.js")).tokenCommand,
  healthcheck: async () => (await import("./healthcheck.js")).healthcheckCommand,
};

const wantsHelp = (args: string[]) => args.includes("--help") || args.includes("-h");

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === "--version" || first === "-v" || first === "version") {
    process.stdout.write(`lain-registry ${VERSION} (Node.js ${process.version})\n`);
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
    // Each name against as many typed words as it has ("config chek x.yml" meant "config check").
    const meant = COMMANDS.find((c) => nearest(argv.slice(0, c.name.split(" ").length).join(" "), [c.name]));
    const hint = meant ? `; did you mean ${meant.name}?` : "";
    process.stderr.write(`unknown command: ${argv.join(" ")}${hint}\n\n${USAGE}`);
    return 2;
  }
  const args = words.slice(command.name.split(" ").length);
  if (wantsHelp(args)) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  const run = await (RUN[command.name] as () => Promise<Run>)();
  return run(args);
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
