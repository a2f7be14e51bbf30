// @ts-check
/**
 * The Nodes the project supports: package.json's engines.node (">=22.19.0"), the one place that
 * says so. Read by the launchers and by dist/cli/main.js before anything else of the project.
 */
import { readFileSync } from "node:fs";

/** @returns {{ major: number, minor: number }} */
function minimum() {
  const engines = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).engines.node;
  const match = /^>=(\d+)\.(\d+)/.exec(engines);
  if (!match) throw new Error(`package.json's engines.node ${JSON.stringify(engines)} is not ">=MAJOR.MINOR..."`);
  return { major: Number(match[1]), minor: Number(match[2]) };
}

/** @param {string} version "v22.19.0" or "22.19.0" */
export function isSupported(version) {
  const [major = 0, minor = 0] = version.replace(/^v/, "").split(".").map(Number);
  const min = minimum();
  return major > min.major || (major === min.major && minor >= min.minor);
}

/** What a command on an unsupported Node says before it exits 2. */
export function refusal() {
  const { major, minor } = minimum();
  return `lain-registry needs Node.js >= ${major}.${minor} (this is ${process.version})`;
}
