import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, supervise, waitForRegistry, type Supervised } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;
/** The old Node a newcomer's machine carries (ours: 20), from the npm registry as .ci/node installs the others. */
const OLD_NODE = 20;

/**
 * The README's two commands in a fresh clone, as a newcomer on a machine whose Node is older
 * than the project supports types them: `npm install && npm start`, then `npm test`. They fetch
 * the npm registry's Node 24 once and run on it; the mirror example starts too; and a command
 * run on the old Node directly refuses it, clearly, before loading anything.
 */
describe.skipIf(!hasTool("git"))(`the quick start on a machine whose Node is ${OLD_NODE}`, () => {
  let work: string;
  let clone: string;
  let env: NodeJS.ProcessEnv;
  let oldNode: string;
  const servers: Supervised[] = [];

  /** A command in the clone, to its end, with the old Node first on PATH. */
  const inClone = (command: string, args: string[], extra: NodeJS.ProcessEnv = {}) =>
    run(command, args, { cwd: clone, env: { ...env, ...extra }, maxBuffer: 64 * 1024 * 1024, timeout: 600_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
    );

  /** A server started in the clone (its own process group, stopped with the test). */
  async function serve(command: string, args: string[], port: number, extra: NodeJS.ProcessEnv = {}): Promise<Supervised> {
    const server = supervise(spawn(command, args, { cwd: clone, env: { ...env, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, ...extra }, stdio: ["ignore", "pipe", "pipe"], detached: true }));
    servers.push(server);
    await waitForRegistry(`http://127.0.0.1:${port}`, server.child, server.output, 60_000);
    return server;
  }

  beforeAll(async () => {
    work = await tempDir("lain-quickstart-");
    clone = join(work, "lain-registry");
    await run("git", ["clone", "--quiet", ROOT, clone]);
    const { stdout } = await run("bash", [join(ROOT, ".ci", "node"), String(OLD_NODE)]);
    oldNode = join(stdout.trim(), "node");
    // The old Node first on PATH, as the machine's; npm is the machine's own, running on it.
    env = { ...process.env, PATH: `${stdout.trim()}:${process.env.PATH ?? ""}` };
  }, 300_000);
  afterAll(async () => {
    for (const server of servers) {
      if (server.child.pid !== undefined && server.child.exitCode === null) process.kill(-server.child.pid, "SIGKILL");
    }
    await rm(work, { recursive: true, force: true });
  });

  it(`runs on Node ${OLD_NODE} as the machine's node`, async () => {
    const { stdout } = await inClone("node", ["--version"]);
    expect(stdout.trim()).toMatch(new RegExp(`^v${OLD_NODE}\\.`));
  });

  it("npm install fetches the npm registry's Node 24 into .node/24, once", async () => {
    const install = await inClone("npm", ["install", "--no-audit", "--no-fund"]);
    expect(install.code, install.stderr).toBe(0);
    expect(install.stderr).toContain("fetching Node.js 24");
    expect(existsSync(join(clone, ".node", "24", "node_modules", `node-linux-${process.arch}`, "bin", "node"))).toBe(true);
    expect(existsSync(join(clone, "dist", "cli", "main.js"))).toBe(true);
  }, 600_000);

  it("npm start serves the quick start on Node 24, and says so", async () => {
    const port = await freePort();
    const server = await serve("npm", ["start"], port);
    // Fetched once, by npm install: reused.
    expect(server.fullOutput()).not.toContain("fetching Node.js");
    expect((await run("curl", ["-s", `http://127.0.0.1:${port}/v2/_catalog`])).stdout).toBe('{"repositories":[]}');
    expect(server.fullOutput()).toMatch(new RegExp(`lain-registry runs on Node\\.js v24\\.\\d+\\.\\d+ \\(.*\\): this machine's Node\\.js is v${OLD_NODE}\\.`));
    // The server's own line (its log is written within a second).
    await until(() => /"msg":"lain-registry listening"/.test(server.fullOutput()), "the listening line");
    expect(server.fullOutput()).toMatch(/"node":"v24\.[^"]*"[^\n]*"msg":"lain-registry listening"/);
    const version = await inClone("node", ["launcher/lain-registry.js", "--version"]);
    expect(version.stdout).toMatch(/^lain-registry \d+\.\d+\.\d+ \(Node\.js v24\./);
  }, 120_000);

  it("the mirror example starts (undici 8 loads on Node 24)", async () => {
    const port = await freePort();
    await serve("node", ["launcher/lain-registry.js", "serve", "config/examples/mirror.yml"], port, {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(work, "mirror-store"),
      REGISTRY_PROXY_SPOOLDIR: join(work, "mirror-spool"),
    });
  }, 120_000);

  it(`a command run on Node ${OLD_NODE} itself refuses it, exit 2, before loading anything`, async () => {
    const direct = await inClone(oldNode, ["dist/cli/main.js", "serve", "config/examples/mirror.yml"]);
    expect(direct.code).toBe(2);
    expect(direct.stderr.trim()).toMatch(new RegExp(`^lain-registry needs Node\\.js >= 22\\.19 \\(this is v${OLD_NODE}\\.\\d+\\.\\d+\\)$`));
  });

  it("npm test runs a test file on Node 24, and passes", async () => {
    const tested = await inClone("npm", ["test", "--", "test/unit/range.test.ts"]);
    expect(tested.code, `${tested.stdout}\n${tested.stderr}`).toBe(0);
    expect(tested.stderr).toMatch(/vitest runs on Node\.js v24\./);
    expect(tested.stdout.replace(/\x1b\[[\d;]*m/g, "")).toMatch(/Tests\s+5 passed \(5\)/);
  }, 600_000);
});
