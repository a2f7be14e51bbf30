import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { RGW_TOOLS } from "./rgw.js";
import { STARGZ_TOOLS } from "./stargz.js";
import { installed, SYSTEM_TOOLS } from "./tools.js";

const TESTS = new URL("..", import.meta.url).pathname;

/** What a suite's source says it needs: the system tools it names, Ceph for S3, root to mount or build hosts. */
function needs(source: string): { tools: string[]; root: boolean } {
  const tools = Object.keys(SYSTEM_TOOLS).filter((tool) => source.includes(`"${tool}"`));
  if (source.includes("RGW_TOOLS") || source.includes('inject("s3")')) tools.push(...RGW_TOOLS);
  if (source.includes("CHROMIUM")) tools.push("/usr/bin/chromium");
  if (source.includes("canBuildNetworks()")) tools.push("ip");
  if (source.includes("STARGZ_TOOLS")) tools.push(...STARGZ_TOOLS);
  return { tools, root: /mountTmpfs\(|canBuildNetworks\(\)|canMount\(|canMountFuse\(\)/.test(source) };
}

/**
 * What `npm test` says first on a machine without everything the integration suites use: which
 * suites will skip, for lack of what, and the one command that installs it. Undefined when
 * nothing is missing (and under REQUIRE_INTEGRATION=1, where a missing tool fails instead).
 */
export async function skipNotice(): Promise<string | undefined> {
  if (process.env.REQUIRE_INTEGRATION === "1") return undefined;
  const missing = new Set(Object.keys(SYSTEM_TOOLS).filter((tool) => !installed(tool)));
  const root = process.getuid?.() === 0;
  if (missing.size === 0 && root) return undefined;
  const files = (await readdir(TESTS, { recursive: true })).filter((f) => f.endsWith(".test.ts")).sort();
  const skipped: string[] = [];
  for (const file of files) {
    const need = needs(await readFile(join(TESTS, file), "utf8"));
    const tools = need.tools.filter((t) => missing.has(t)).map((t) => (RGW_TOOLS.includes(t) ? "Ceph's radosgw" : t));
    const lacking = [...new Set(tools), ...(need.root && !root ? ["root"] : [])];
    if (lacking.length > 0) skipped.push(`  test/${file} (needs ${lacking.join(", ")})`);
  }
  if (skipped.length === 0) return undefined;
  const packages = [...new Set([...missing].map((tool) => SYSTEM_TOOLS[tool]))].sort();
  return [
    `These integration suites will skip on this machine, for lack of what they test against:`,
    ...skipped,
    packages.length > 0 ? `Install it (Debian) with: sudo apt-get install -y --no-install-recommends ${packages.join(" ")}` : "",
    root ? "" : "The suites that mount a small disk or build network hosts need root (CI runs as root).",
    "A green run here is not a full one: CI runs every suite (.ci/run, with REQUIRE_INTEGRATION=1).",
  ]
    .filter((line) => line !== "")
    .join("\n");
}
