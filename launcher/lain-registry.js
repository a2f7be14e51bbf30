#!/usr/bin/env node
// @ts-check
/**
 * The `lain-registry` command (and `npm start`): dist/cli/main.js on a supported Node, with the
 * node flags of its first line, whatever Node this machine puts first on PATH (launcher/runtime.js).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { announce, requireRuntime, ROOT } from "./runtime.js";
import { execNode } from "./exec.js";

const main = join(ROOT, "dist", "cli", "main.js");
// "#!/usr/bin/env -S node FLAGS": the flags every launcher starts the server with.
const flags = (readFileSync(main, "utf8").split("\n", 1)[0] ?? "").split(/\s+/).slice(3);
const runtime = requireRuntime({ fetch: true });
announce("lain-registry", runtime, { always: false });
execNode(runtime.node, [...flags, main, ...process.argv.slice(2)]);
