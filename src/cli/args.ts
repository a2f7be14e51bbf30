import { parseArgs, type ParseArgsConfig } from "node:util";
import { DEFAULT_CONFIG_PATH } from "../config/load.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface CommandArgs {
  /** The configuration file: `--config FILE`, or the positional one; else the package's. */
  config: string;
  values: Record<string, string | boolean | undefined>;
  /** The positionals besides the configuration. */
  positionals: string[];
}

/** A configuration file given as a positional: mirror prefetch's others are references, not files. */
const CONFIG_FILE = /\.ya?ml$/;

/**
 * A command's arguments, one way for every command: its own options (`--name value` or
 * `--name=value`), and its configuration as `--config FILE` or as a positional. `others` says
 * what other positionals the command takes: none (the first positional is the configuration),
 * or references (then a positional ending in .yml or .yaml is). A string is a usage error.
 */
export function commandArgs(args: string[], options: Options, others: "none" | "references" = "none"): CommandArgs | string {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options: { ...options, config: { type: "string" } }, allowPositionals: true, strict: true });
  } catch (err) {
    // node's own sentences are long ("... place it at the end of the command after '--'"): the first says it.
    const [first = ""] = (err as Error).message.split(". ");
    return first.replace(/^Unknown option '(.+)'$/, "unknown option $1");
  }
  const { config: given, ...values } = parsed.values as Record<string, string | boolean | undefined>;
  const positional = others === "none" ? parsed.positionals.slice(0, 1) : parsed.positionals.filter((p) => CONFIG_FILE.test(p));
  const positionals = parsed.positionals.filter((p) => !positional.includes(p));
  if (others === "none" && positionals.length > 0) return `unexpected argument ${positionals[0]}`;
  if (positional.length > 1 || (given !== undefined && positional.length > 0)) return "the configuration is given twice";
  return { config: typeof given === "string" ? given : (positional[0] ?? DEFAULT_CONFIG_PATH), values, positionals };
}
