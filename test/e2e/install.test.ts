import { execFile } from "node:child_process";
import { realpathSync } from "node:fs";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/http.js";
import { freePort, startServerProcess } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;

/**
 * The README's install: `npm pack` in a checkout, `npm install -g --prefix` of the tarball and of
 * the npm registry's Node 24 into one prefix, and the unit in config/systemd run as written there.
 */
describe("installing lain-registry as the README says", () => {
  let work: string;
  let prefix: string;
  let bin: string;
  let installed: string;

  beforeAll(async () => {
    work = await tempDir("lain-install-");
    // dist/ is built already (npm test builds first); rebuilding it here would pull it from under parallel suites.
    const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--pack-destination", work, "--silent"], { cwd: ROOT });
    const tarball = join(work, stdout.trim().split("\n").pop()!);
    prefix = join(work, "prefix");
    await run("npm", ["install", "-g", "--prefix", prefix, "--no-audit", "--no-fund", tarball, `node-linux-${process.arch}@24`], { cwd: work });
    bin = join(prefix, "bin", "lain-registry");
    installed = join(prefix, "lib", "node_modules", "lain-registry");
  }, 180_000);
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  /** The shipped unit's command line, with the README's prefix replaced by this test's. */
  async function execStart(): Promise<string> {
    const unit = await readFile(join(installed, "config", "systemd", "lain-registry.service"), "utf8");
    return (/^ExecStart=(.*)$/m.exec(unit)?.[1] ?? "").replaceAll("/opt/lain-registry", prefix);
  }

  it("puts lain-registry on the prefix's PATH, running on the prefix's Node 24 whatever node comes first on PATH", async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { version: string };
    const old = (await run("bash", [join(ROOT, ".ci", "node"), "20"])).stdout.trim();
    const { stdout, stderr } = await run(bin, ["--version"], { env: { ...process.env, PATH: `${old}:${process.env.PATH ?? ""}` } });
    expect(stdout.trim()).toMatch(new RegExp(`^lain-registry ${pkg.version.replace(/\./g, "\\.")} \\(Node\\.js v24\\.`));
    expect(stderr).toContain(`lain-registry runs on Node.js v24.`);
    expect(stderr).toContain(`(${join(prefix, "bin", "node")}): this machine's Node.js is v20.`);
    expect(await readFile(join(installed, "LICENSE"), "utf8")).toContain("MIT License");
    expect(await readdir(join(installed, "config", "systemd"))).toEqual(["lain-registry.service"]);
    expect(await readdir(join(installed, "ui"))).toEqual(expect.arrayContaining(["index.html", "app.js"]));
  });

  it("the unit's ExecStart serves the quick start's configuration, console included, as one process on the named Node", async () => {
    const port = await freePort();
    const config = join(work, "config.yml");
    const quickStart = await readFile(join(installed, "config", "config.yml"), "utf8");
    await writeFile(config, quickStart.replace("./data", join(work, "data")));
    const [node, ...args] = (await execStart()).split(" ");
    const server = await startServerProcess(node!, [...args.slice(0, -2), "serve", config], port, { ...process.env, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` });
    try {
      expect((await call("GET", `${server.url}/ui/`)).status).toBe(200);
      // The launcher became the server (the same pid) with the flags of main.js's first line.
      const cmdline = (await readFile(`/proc/${server.child.pid}/cmdline`, "utf8")).split("\0");
      expect(cmdline[0]).toBe(realpathSync(node!));
      expect(cmdline.slice(1, 4)).toEqual(["--max-semi-space-size=8", "--min-semi-space-size=8", join(installed, "dist", "cli", "main.js")]);
    } finally {
      await server.stop();
    }
  });

  it.skipIf(!hasTool("systemd-analyze"))("ships a systemd unit that systemd accepts, installed where the README installs", async () => {
    const shipped = await readFile(join(installed, "config", "systemd", "lain-registry.service"), "utf8");
    const unit = join(work, "lain-registry.service");
    await writeFile(unit, shipped.replaceAll("/opt/lain-registry", prefix));
    const verified = await run("systemd-analyze", ["verify", unit]).then(() => ({ code: 0, stderr: "" }), (err: { code: number; stderr: string }) => err);
    expect(verified.stderr).not.toMatch(/Unknown|Failed|Invalid|bad-setting|not executable/i);
    expect(verified.code).toBe(0);
    // Exit 2 is a refused configuration, or a Node it cannot run on (README: exit codes): restarting would not help.
    expect(shipped).toContain("RestartPreventExitStatus=2");
  });
});
