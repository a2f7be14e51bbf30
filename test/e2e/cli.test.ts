import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/http.js";
import { randomImage, pushImage } from "../helpers/oci.js";
import { cliArgs, freePort, runCli, startLainProcess, supervise, waitForRegistry } from "../helpers/process.js";
import { startTestRegistry, tempDir } from "../helpers/registry.js";
import { until } from "../helpers/until.js";



describe("lain-registry CLI", () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir("lain-cli-");
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it("--version prints the package version and the Node it runs on", async () => {
    const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    const { code, stdout } = await runCli("--version");
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(`lain-registry ${pkg.version} (Node.js ${process.version})`);
  });

  it("config check exits 0 for a good configuration", async () => {
    const { code, stdout } = await runCli("config", "check", "config/config.yml");
    expect(code).toBe(0);
    expect(stdout).toContain("OK");
    // A key not implemented yet is a warning, never a failure.
    const planned = join(work, "planned.yml");
    await writeFile(planned, "version: 0.1\nstorage: {inmemory: {}}\nredis: {addr: 127.0.0.1:6379}\n");
    const warned = await runCli("config", "check", planned);
    expect(warned.code).toBe(0);
    expect(warned.stdout).toContain("warning: redis: accepted but not implemented yet");
  });

  it("config check names a file the configuration needs that this machine lacks: the LAIN S3 example's token bundle", async () => {
    const { code, stdout } = await runCli("config", "check", "config/examples/lain-s3.yml");
    expect(code).toBe(1);
    expect(stdout).toContain("error: auth.token.rootcertbundle: /lain/app/auth/server.pem cannot be read: ENOENT");
  });

  it("every command takes its configuration as config.yml or as --config config.yml, and not twice", async () => {
    const port = await freePort();
    const config = join(work, "either-way.yml");
    await writeFile(config, `version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: ${join(work, "either-way-store")}}}\nhttp: {addr: "127.0.0.1:${port}", secret: s}\n`);
    const running = await startLainProcess(config, port);
    try {
      const commands: Array<{ args: string[]; says: string | RegExp; code: number }> = [
        { args: ["config", "check"], says: `${config}: OK`, code: 0 },
        { args: ["garbage-collect", "--dry-run"], says: "would free 0 blobs", code: 0 },
        { args: ["healthcheck"], says: "", code: 0 },
        { args: ["upstreams", "--out", join(work, "nope.upstreams")], says: `${config} has no etcd section`, code: 2 },
        { args: ["mirror", "prefetch", "lain/app:v1"], says: `${config} has no proxy section`, code: 2 },
        { args: ["mirror", "writeback"], says: `${config} has no proxy section`, code: 2 },
      ];
      for (const { args, says, code } of commands) {
        for (const given of [[config], ["--config", config], [`--config=${config}`]]) {
          const result = await runCli(...args.slice(0, args[0] === "config" || args[0] === "mirror" ? 2 : 1), ...given, ...args.slice(args[0] === "config" || args[0] === "mirror" ? 2 : 1));
          expect(result.code, `${args.join(" ")} ${given.join(" ")}: ${result.stderr}`).toBe(code);
          expect(result.stdout + result.stderr).toMatch(says);
        }
      }
      const twice = await runCli("config", "check", config, "--config", config);
      expect(twice.code).toBe(2);
      expect(twice.stderr).toContain("the configuration is given twice");
    } finally {
      await running.stop();
    }
    const refused = join(work, "either-way-bad.yml");
    await writeFile(refused, "version: 0.1\nstorage: {filesytem: {}}\n");
    for (const given of [[refused], ["--config", refused]]) {
      const served = await runCli("serve", ...given);
      expect(served.code).toBe(2);
      expect(served.stderr).toContain("config error: storage.filesytem:");
    }
  });

  it("config check exits non-zero and lists every problem by key path", async () => {
    const bad = join(work, "bad.yml");
    await writeFile(bad, "version: 0.1\nstorage:\n  filesystem: {rootdirectory: /x}\n  delete: {enabled: sometimes}\nhttp: {addr: [1]}\nlog: {level: chatty}\n");
    const { code, stdout } = await runCli("config", "check", bad);
    expect(code).toBe(1);
    expect(stdout).toContain("error: storage.delete.enabled:");
    expect(stdout).toContain("error: http.addr:");
    expect(stdout).toContain("error: log.level:");
    expect(stdout).toContain("3 problem(s)");
  });

  it("config check fails for a missing file", async () => {
    const { code, stdout } = await runCli("config", "check", join(work, "nope.yml"));
    expect(code).toBe(1);
    expect(stdout).toContain("cannot read");
  });

  it("serve refuses a bad configuration with exit code 2", async () => {
    const bad = join(work, "bad-serve.yml");
    await writeFile(bad, "version: 0.1\nstorage: {filesystem: {}, inmemory: {}}\n");
    const { code, stderr } = await runCli("serve", bad);
    expect(code).toBe(2);
    expect(stderr).toContain("storage");
  });

  it("started from another directory, serve's start line names the configuration file and the store's absolute path", async () => {
    const elsewhere = join(work, "elsewhere");
    await mkdir(elsewhere, { recursive: true });
    const port = await freePort();
    const config = join(work, "relative-store.yml");
    await writeFile(config, `version: 0.1\nlog: {level: info, formatter: json}\nstorage: {filesystem: {rootdirectory: ./data}}\nhttp: {addr: "127.0.0.1:${port}", secret: s}\n`);
    // The configuration named relative to where serve starts, as an operator types it.
    const server = supervise(spawn(process.execPath, cliArgs("serve", relative(elsewhere, config)), { cwd: elsewhere, stdio: ["ignore", "pipe", "pipe"] }));
    try {
      await waitForRegistry(`http://127.0.0.1:${port}`, server.child, server.output);
      // The log is written asynchronously: read it once the line is there.
      const startLine = () => server.fullOutput().split("\n").find((line) => line.includes("lain-registry listening"));
      await expect.poll(startLine).toBeDefined();
      expect(JSON.parse(startLine()!)).toMatchObject({ config, storage: "filesystem", store: join(elsewhere, "data") });
    } finally {
      await server.stop();
    }
  });

  it("an unknown command exits 2 with the usage", async () => {
    const { code, stderr } = await runCli("frobnicate");
    expect(code).toBe(2);
    expect(stderr).toContain("Usage:");
    expect(stderr).not.toContain("did you mean");
  });

  it.each([
    [["srve"], "serve"],
    [["config", "chek", "x.yml"], "config check"],
    [["garbage-colect"], "garbage-collect"],
  ])("a misspelt command %j exits 2 and names %s", async (argv, meant) => {
    const { code, stderr } = await runCli(...argv);
    expect(code).toBe(2);
    expect(stderr.split("\n")[0]).toBe(`unknown command: ${argv.join(" ")}; did you mean ${meant}?`);
  });

  it("--help lists every command with the exit codes; COMMAND --help and help COMMAND show that command", async () => {
    const top = await runCli("--help");
    expect(top.code).toBe(0);
    for (const command of ["serve", "config check", "mirror prefetch", "upstreams", "garbage-collect", "token issue", "healthcheck"]) {
      expect(top.stdout).toContain(`lain-registry ${command}`);
    }
    expect(top.stdout).toContain("Exit codes: 0 success; 1");
    const gc = await runCli("garbage-collect", "--help");
    expect(gc.code).toBe(0);
    expect(gc.stdout).toMatch(/^Usage: lain-registry garbage-collect/);
    expect(gc.stdout).toContain("--delete-untagged");
    const viaHelp = await runCli("help", "config", "check");
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toMatch(/^Usage: lain-registry config check/);
    expect(viaHelp.stdout).toContain("--connect");
  });

  it("a usage mistake exits 2 and names the command's synopsis", async () => {
    const gc = await runCli("garbage-collect", "--frobnicate");
    expect(gc.code).toBe(2);
    expect(gc.stderr).toContain("unknown option --frobnicate");
    expect(gc.stderr).toContain("usage: lain-registry garbage-collect [config.yml]");
    const prefetch = await runCli("mirror", "prefetch");
    expect(prefetch.code).toBe(2);
    expect(prefetch.stderr).toContain("usage: lain-registry mirror prefetch");
    const token = await runCli("token", "issue", "--key");
    expect(token.code).toBe(2);
    expect(token.stderr).toContain("usage: lain-registry token issue");
  });

  it("healthcheck exits 0 for a serving registry, 1 when nothing answers, 2 for a refused configuration", async () => {
    const port = await freePort();
    const config = join(work, "health.yml");
    await writeFile(config, `version: 0.1\nstorage: {inmemory: {}}\nhttp: {addr: ":${port}"}\n`);
    expect((await runCli("healthcheck", config)).code).toBe(1);
    const server = await startLainProcess(config, port, { REGISTRY_HTTP_ADDR: `:${port}` });
    try {
      const healthy = await runCli("healthcheck", config);
      expect(healthy.code, healthy.stderr).toBe(0);
    } finally {
      await server.stop();
    }
    const down = await runCli("healthcheck", config);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("unhealthy");
    const bad = join(work, "health-bad.yml");
    await writeFile(bad, "version: 0.1\nstorage: {filesystem: {}, inmemory: {}}\n");
    expect((await runCli("healthcheck", bad)).code).toBe(2);
  });

  it("shows garbage-collect's progress on a terminal only; piped, only the result lines", async () => {
    const root = join(work, "gc-store");
    const registry = await startTestRegistry({ root });
    await pushImage(registry.url, "cli/app", "v1", randomImage({ layers: 2 }));
    await registry.close();
    const config = join(work, "gc.yml");
    await writeFile(config, `version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: ${root}}}\n`);
    const args = ["garbage-collect", config, "--dry-run", "--delay", "0s"];
    // script(1) gives the command a pseudo-terminal.
    const { stdout: terminal } = await promisify(execFile)("script", ["-qec", [process.execPath, ...cliArgs(...args)].join(" "), "/dev/null"]);
    expect(terminal).toMatch(/\rmark: repositories 1, manifests 1/);
    expect(terminal).toMatch(/\rscan: blobs 4, unreferenced 0/);
    expect(terminal).toContain("would free 0 blobs");
    const piped = await runCli(...args);
    expect(piped.code).toBe(0);
    expect(piped.stderr).not.toContain("mark:");
    expect(piped.stdout).toContain("1 repositories, 1 manifests, 4 blobs kept; would free 0 blobs");
  });

  it("logs human-readable lines on a terminal (log.formatter unset), JSON when piped", async () => {
    const port = await freePort();
    const config = join(work, "tty.yml");
    await writeFile(config, `version: 0.1\nstorage: {inmemory: {}}\nhttp: {addr: "127.0.0.1:${port}"}\n`);
    // On a pseudo-terminal of script(1), stopped (with script) once it has said it listens.
    const tty = spawn("script", ["-qc", `${process.execPath} ${cliArgs("serve", config).join(" ")}`, "/dev/null"], { detached: true });
    let terminal = "";
    tty.stdout.on("data", (chunk: Buffer) => (terminal += chunk.toString()));
    const exited = once(tty, "exit");
    try {
      await until(() => terminal.includes("lain-registry listening"), "the server's line on the terminal");
    } finally {
      process.kill(-(tty.pid as number), "SIGTERM");
      await exited;
    }
    expect(terminal).toMatch(/INFO.*lain-registry listening/);
    expect(terminal).not.toContain('{"level"');
    const piped = await startLainProcess(config, port);
    await piped.stop();
    expect(piped.fullOutput()).toMatch(/^\{"level":30,.*"msg":"lain-registry listening"\}$/m);
  });

  it("serve honours REGISTRY_* overrides and stops cleanly on SIGTERM", async () => {
    const config = join(work, "serve.yml");
    const root = join(work, "store");
    await writeFile(config, "version: 0.1\nstorage:\n  filesystem: {rootdirectory: /nonexistent/should-be-overridden}\n");
    const port = await freePort();
    const server = await startLainProcess(config, port, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root });
    const reply = await call("POST", `${server.url}/v2/cli/test/blobs/uploads/`);
    expect(reply.status).toBe(202);
    await server.stop("SIGTERM");
    expect(server.child.exitCode).toBe(0);
    expect((await readFile(join(root, "docker/registry/v2/repositories/cli/test/_uploads", reply.headers["docker-upload-uuid"]!, "startedat"), "utf8")).length).toBeGreaterThan(0);
  });
});
