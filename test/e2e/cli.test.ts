import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/http.js";
import { freePort, runCli, startLainProcess } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";



describe("lain-registry CLI", () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir("lain-cli-");
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it("--version prints the package version", async () => {
    const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    const { code, stdout } = await runCli("--version");
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(`lain-registry ${pkg.version}`);
  });

  it("config check exits 0 for a good configuration", async () => {
    const { code, stdout } = await runCli("config", "check", "config/examples/lain-s3.yml");
    expect(code).toBe(0);
    expect(stdout).toContain("OK");
    // A key not implemented yet is a warning, never a failure.
    const planned = join(work, "planned.yml");
    await writeFile(planned, "version: 0.1\nstorage: {inmemory: {}}\nnotifications: {endpoints: []}\n");
    const warned = await runCli("config", "check", planned);
    expect(warned.code).toBe(0);
    expect(warned.stdout).toContain("warning: notifications: accepted but not implemented yet");
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

  it("an unknown command exits 2 with the usage", async () => {
    const { code, stderr } = await runCli("frobnicate");
    expect(code).toBe(2);
    expect(stderr).toContain("Usage:");
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
