// @ts-check
/**
 * Which Node runs lain-registry. The machine's own when it is one the project supports
 * (package.json's engines); else the official Node binaries from the npm registry (package
 * node-<platform>-<arch>), fetched once into .node/<major>/ of the package and reused. Nothing
 * is downloaded from anywhere but the npm registry npm is configured with.
 *
 * Plain JavaScript, and nothing newer than the Node 18 of Debian's own nodejs can run: it is
 * what a machine's old Node runs before anything of the project's can.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isSupported, refusal } from "./engines.js";

/** The package's root: where package.json, dist/ and .node/ are. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export { refusal };

/** The Node the project ships and measures, fetched when the machine's is too old. */
export const RUNTIME_MAJOR = 24;

/** @param {number} major */
function packageName(major) {
  return `node-${process.platform}-${process.arch}@${major}`;
}

/**
 * Where the npm registry's Node of `major` lives for this package (.node/<major>/...).
 * @param {number} major
 */
export function fetchedNode(major) {
  return join(ROOT, ".node", String(major), "node_modules", `node-${process.platform}-${process.arch}`, "bin", "node");
}

/**
 * Installs the npm registry's Node of `major` into .node/<major>/ (npm's progress on stderr),
 * unless it is there already; answers its binary.
 * @param {number} major
 */
export function fetchNode(major) {
  const node = fetchedNode(major);
  if (existsSync(node)) return node;
  process.stderr.write(`lain-registry: fetching Node.js ${major} (${packageName(major)}) from the npm registry into ${join(ROOT, ".node", String(major))}\n`);
  const npm = spawnSync(
    "npm",
    ["install", "--prefix", join(ROOT, ".node", String(major)), "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error", packageName(major)],
    // Its output goes to stderr: stdout is for what the caller asked (bin-dir prints a folder).
    { stdio: ["ignore", 2, 2] },
  );
  if (npm.status !== 0 || !existsSync(node)) throw new Error(`npm could not install ${packageName(major)} (${npm.error ? npm.error.message : `exit ${npm.status}`})`);
  return node;
}

/** @param {string} node */
function versionOf(node) {
  try {
    return execFileSync(node, ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

/**
 * @typedef {{ node: string, version: string, why?: string }} Runtime
 * A Node to run on, and why it is not the one running now (when it is not).
 */

/**
 * A Node installed into the same npm prefix as this package (`npm install -g --prefix P` of the
 * package and of node-<platform>-<arch>, as the README's server install does): P/bin/node.
 */
function prefixNode() {
  const modules = dirname(ROOT);
  return basename(modules) === "node_modules" ? join(modules, "..", "..", "bin", "node") : undefined;
}

/**
 * The Node to run on: this one if supported; else the one installed into the package's npm
 * prefix; else the one fetched into .node/, fetching it now if `fetch` and this is not a global
 * install. Undefined when there is none.
 * @param {{ fetch: boolean }} options
 * @returns {Runtime | undefined}
 */
export function chooseRuntime(options) {
  if (isSupported(process.version)) return { node: process.execPath, version: process.version };
  const why = `this machine's Node.js is ${process.version}`;
  for (const node of [prefixNode(), fetchedNode(RUNTIME_MAJOR)]) {
    const version = node && existsSync(node) ? versionOf(node) : undefined;
    if (node && version && isSupported(version)) return { node, version, why };
  }
  if (!options.fetch || process.env.npm_config_global === "true") return undefined;
  try {
    const node = fetchNode(RUNTIME_MAJOR);
    return { node, version: versionOf(node) ?? `v${RUNTIME_MAJOR}`, why };
  } catch (err) {
    process.stderr.write(`lain-registry: ${err instanceof Error ? err.message : String(err)}\n`);
    return undefined;
  }
}

/**
 * chooseRuntime's answer, or the refusal (exit 2) when there is none.
 * @param {{ fetch: boolean }} options
 * @returns {Runtime}
 */
export function requireRuntime(options) {
  const runtime = chooseRuntime(options);
  if (runtime) return runtime;
  process.stderr.write(`${refusal()}\n`);
  process.exit(2);
}

/**
 * The one line that says which Node `what` runs on (on stderr): always, or only when it is not
 * the machine's own (`always: false`).
 * @param {string} what
 * @param {Runtime} runtime
 * @param {{ always: boolean }} options
 */
export function announce(what, runtime, options) {
  if (!runtime.why && !options.always) return;
  const why = runtime.why ? `: ${runtime.why}, older than the project supports` : "";
  process.stderr.write(`${what} runs on Node.js ${runtime.version} (${runtime.node})${why}\n`);
}

// `node launcher/runtime.js ensure`: npm install's last step on a machine whose Node is too old.
// `node launcher/runtime.js bin-dir MAJOR`: the folder of the npm registry's Node MAJOR, fetched
// if need be (.ci/node).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [verb, major] = process.argv.slice(2);
  if (verb === "ensure") {
    if (!chooseRuntime({ fetch: true }) && process.env.npm_config_global !== "true") process.stderr.write(`${refusal()}\n`);
  } else if (verb === "bin-dir" && major && /^\d+$/.test(major)) {
    process.stdout.write(`${dirname(fetchNode(Number(major)))}\n`);
  } else {
    process.stderr.write("usage: node launcher/runtime.js ensure | bin-dir MAJOR\n");
    process.exitCode = 2;
  }
}
