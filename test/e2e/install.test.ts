import { execFile } from "node:child_process";
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

/** The README's install: `npm pack` in a checkout, `npm install -g` of the tarball, the unit in config/systemd. */
describe("installing lain-registry as the README says", () => {
  let work: string;
  let bin: string;
  let installed: string;

  beforeAll(async () => {
    work = await tempDir("lain-install-");
    // dist/ is built already (npm test builds first); rebuilding it here would pull it from under parallel suites.
    const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--pack-destination", work, "--silent"], { cwd: ROOT });
    const tarball = join(work, stdout.trim().split("\n").pop()!);
    await run("npm", ["install", "-g", "--prefix", join(work, "prefix"), "--no-audit", "--no-fund", tarball], { cwd: work });
    bin = join(work, "prefix", "bin", "lain-registry");
    installed = join(work, "prefix", "lib", "node_modules", "lain-registry");
  }, 180_000);
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("puts lain-registry on the prefix's PATH, with the LICENSE, the configs and the console's files", async () => {
    const { stdout } = await run(bin, ["--version"]);
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { version: string };
    expect(stdout.trim()).toBe(`lain-registry ${pkg.version}`);
    expect(await readFile(join(installed, "LICENSE"), "utf8")).toContain("MIT License");
    expect(await readdir(join(installed, "config", "systemd"))).toEqual(["lain-registry.service"]);
    expect(await readdir(join(installed, "ui"))).toEqual(expect.arrayContaining(["index.html", "app.js"]));
  });

  it("the installed command serves the quick start's configuration, console included", async () => {
    const port = await freePort();
    const config = join(work, "config.yml");
    const quickStart = await readFile(join(installed, "config", "config.yml"), "utf8");
    await writeFile(config, quickStart.replace("./data", join(work, "data")));
    const server = await startServerProcess(bin, ["serve", config], port, { ...process.env, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` });
    try {
      expect((await call("GET", `${server.url}/ui/`)).status).toBe(200);
      // The bin's first line reaches node: the server runs with its small young generation.
      const cmdline = (await readFile(`/proc/${server.child.pid}/cmdline`, "utf8")).split("\0");
      expect(cmdline.slice(0, 3)).toEqual(["node", "--max-semi-space-size=8", "--min-semi-space-size=8"]);
    } finally {
      await server.stop();
    }
  });

  it.skipIf(!hasTool("systemd-analyze"))("ships a systemd unit that systemd accepts", async () => {
    const unit = join(installed, "config", "systemd", "lain-registry.service");
    const { stderr } = await run("systemd-analyze", ["verify", unit]).catch((err: { stderr: string }) => ({ stderr: err.stderr }));
    expect(stderr).not.toMatch(/Unknown|Failed|Invalid|bad-setting/i);
    const text = await readFile(unit, "utf8");
    expect(text).toContain("ExecStart=/usr/bin/env lain-registry serve /etc/lain-registry/config.yml");
    // Exit 2 is a refused configuration (README: exit codes): restarting would not help.
    expect(text).toContain("RestartPreventExitStatus=2");
  });
});
