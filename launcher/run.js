// @ts-check
/**
 * `node launcher/run.js TOOL ARGS...`: a tool of node_modules/.bin (vitest, tsx) on a supported
 * Node (launcher/runtime.js), for npm test and npm run bench on any machine.
 */
import { realpathSync } from "node:fs";
import { join } from "node:path";
import { announce, requireRuntime, ROOT } from "./runtime.js";
import { execNode } from "./exec.js";

const [tool, ...args] = process.argv.slice(2);
if (!tool) {
  process.stderr.write("usage: node launcher/run.js TOOL [ARGS...]\n");
  process.exit(2);
}
const runtime = requireRuntime({ fetch: true });
announce(tool, runtime, { always: true });
execNode(runtime.node, [realpathSync(join(ROOT, "node_modules", ".bin", tool)), ...args]);
