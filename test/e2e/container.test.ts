import { execFile } from "node:child_process";
import { chown, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/http.js";
import { randomImage, sha256, writeOciLayout } from "../helpers/oci.js";
import { freePort } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { hasTool } from "../helpers/tools.js";

/** Built by .ci/container-image (CI runs it before the tests). */
const IMAGE = process.env.LAIN_IMAGE ?? "localhost/lain-registry:ci";
// runc: crun cannot set up this machine's hybrid cgroups; the sandbox refuses podman's default
// (raised) rlimits, so the container gets explicit ones below the machine's.
const PODMAN = ["--runtime", "runc"];
const LIMITS = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096"];

async function podman(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)("podman", [...PODMAN, ...args], { maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function imageBuilt(): Promise<boolean> {
  if (!hasTool("podman")) return false;
  const built = (await podman("image", "exists", IMAGE)).code === 0;
  if (!built && process.env.REQUIRE_INTEGRATION === "1") throw new Error(`${IMAGE} is required (REQUIRE_INTEGRATION=1): run .ci/container-image`);
  return built;
}

const available = await imageBuilt();

interface ImageConfig {
  User: string;
  Entrypoint: string[];
  Cmd: string[];
  Volumes: Record<string, unknown>;
}

describe.skipIf(!available)("the container image (Dockerfile built with podman)", () => {
  const name = `lain-registry-test-${process.pid}`;
  let store: string;
  let work: string;
  let port: number;
  let url: string;

  beforeAll(async () => {
    store = await tempDir("lain-container-store-");
    work = await tempDir("lain-container-");
    // The image runs as the node user (uid 1000): the mounted store must be its.
    await chown(store, 1000, 1000);
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // Host networking (this machine has no bridge); REGISTRY_HTTP_ADDR moves it to a free port.
    const run = await podman(
      "run", "-d", "--name", name, ...LIMITS, "--network", "host",
      "-e", `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`, "-v", `${store}:/var/lib/registry`, IMAGE,
    );
    expect(run.code, run.stderr).toBe(0);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const reply = await call("GET", `${url}/v2/`).catch(() => undefined);
      if (reply?.status === 200) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`the container did not answer: ${(await podman("logs", name)).stderr}`);
  }, 60_000);

  afterAll(async () => {
    await podman("rm", "-f", name);
    await rm(work, { recursive: true, force: true });
    await rm(store, { recursive: true, force: true });
  });

  it("declares a non-root user, the store volume, serve with /etc/lain-registry/config.yml and a HEALTHCHECK", async () => {
    const inspected = await podman("image", "inspect", IMAGE);
    const [image] = JSON.parse(inspected.stdout) as Array<{ Config: ImageConfig; Healthcheck?: { Test: string[] } }>;
    const config = image?.Config as ImageConfig;
    expect(config.User).toBe("node");
    expect(Object.keys(config.Volumes)).toContain("/var/lib/registry");
    expect(config.Cmd).toEqual(["serve", "/etc/lain-registry/config.yml"]);
    expect(image?.Healthcheck?.Test).toEqual(["CMD", "node", "/opt/lain-registry/dist/cli/main.js", "healthcheck", "/etc/lain-registry/config.yml"]);
    const id = await podman("exec", name, "id", "-u");
    expect(id.stdout.trim()).toBe("1000");
  });

  it("runs Node 24, the server with the bin's node flags", async () => {
    const version = await podman("exec", name, "node", "--version");
    expect(version.stdout.trim()).toMatch(/^v24\./);
    const server = await podman("exec", name, "cat", "/proc/1/cmdline");
    expect(server.stdout.split("\0").slice(0, 4)).toEqual(["node", "--max-semi-space-size=8", "--min-semi-space-size=8", "/opt/lain-registry/dist/cli/main.js"]);
  });

  it("passes its HEALTHCHECK (which follows REGISTRY_HTTP_ADDR to /health)", async () => {
    const check = await podman("healthcheck", "run", name);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const direct = await podman("exec", name, "node", "/opt/lain-registry/dist/cli/main.js", "healthcheck", "/etc/lain-registry/config.yml");
    expect(direct.code).toBe(0);
    // Pointed at a port nothing listens on, the same check fails.
    const elsewhere = await podman("exec", "-e", "REGISTRY_HTTP_ADDR=127.0.0.1:1", name, "node", "/opt/lain-registry/dist/cli/main.js", "healthcheck", "/etc/lain-registry/config.yml");
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain("unhealthy");
  });

  it("stores a pushed image under /var/lib/registry in distribution's layout and serves it back", async () => {
    const image = randomImage({ layers: 2, layerSize: 100_000 });
    const source = join(work, "src");
    await writeOciLayout(source, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    await skopeo("copy", `oci:${source}:v1`, `docker://127.0.0.1:${port}/container/app:v1`);
    expect(sha256(await skopeo("inspect", "--raw", `docker://127.0.0.1:${port}/container/app:v1`))).toBe(image.manifest.digest);
    const blobs = await readdir(join(store, "docker/registry/v2/blobs/sha256"));
    for (const layer of image.layers) expect(blobs).toContain(layer.digest.slice("sha256:".length, "sha256:".length + 2));
    const tags = await readdir(join(store, "docker/registry/v2/repositories/container/app/_manifests/tags"));
    expect(tags).toEqual(["v1"]);
  });

  it("logs JSON lines with the request id it returns, and stops cleanly on SIGTERM", async () => {
    const reply = await call("GET", `${url}/v2/`, { headers: { "x-request-id": "container-check-1" } });
    expect(reply.headers["x-request-id"]).toBe("container-check-1");
    const stop = await podman("stop", "-t", "20", name);
    expect(stop.code, stop.stderr).toBe(0);
    const state = await podman("inspect", name, "--format", "{{.State.ExitCode}}");
    expect(state.stdout.trim()).toBe("0");
    const logs = await podman("logs", name);
    const lines = (logs.stdout + logs.stderr).split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => l["http.request.id"] === "container-check-1" && l["http.request.uri"] === "/v2/" && l["http.response.status"] === 200)).toBe(true);
    expect(lines.some((l) => l.msg === "stopped")).toBe(true);
  }, 60_000);
});
