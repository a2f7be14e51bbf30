import { createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { issueToken } from "../auth/issue.js";
import { parseDuration } from "../config/duration.js";
import { usageError } from "./help.js";

/** Parses "--name value" pairs; --scope may repeat. */
function flags(args: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i];
    const value = args[i + 1];
    if (!name?.startsWith("--") || value === undefined) throw new Error(`expected --flag value pairs, got ${JSON.stringify(name)}`);
    out.set(name.slice(2), [...(out.get(name.slice(2)) ?? []), value]);
  }
  return out;
}

/** `lain-registry token issue ...` */
export async function tokenCommand(args: string[]): Promise<number> {
  try {
    const given = flags(args);
    const one = (name: string) => {
      const value = given.get(name)?.[0];
      if (!value) throw new Error(`--${name} is required`);
      return value;
    };
    const ttl = parseDuration(given.get("ttl")?.[0] ?? "1h");
    if (ttl === undefined) throw new Error("--ttl must be a duration such as 15m or 24h");
    const token = await issueToken({
      key: createPrivateKey(await readFile(one("key"))),
      issuer: one("issuer"),
      service: one("service"),
      subject: one("sub"),
      scopes: given.get("scope") ?? [],
      ttlSeconds: Math.round(ttl / 1000),
    });
    process.stdout.write(`${token}\n`);
    return 0;
  } catch (err) {
    return usageError("token issue", `lain-registry token issue: ${(err as Error).message}`);
  }
}
