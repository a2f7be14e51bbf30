import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CountingProxy } from "../helpers/counting-proxy.js";
import { pushImage, randomImage } from "../helpers/oci.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";

const run = promisify(execFile);
const available = hasTool("containerd") && hasTool("ctr");
const HOST = "registry.lain.local";

describe.skipIf(!available)("containerd pulls through the mirror (hosts.toml)", () => {
  let work: string;
  let peer: TestRegistry;
  let mirror: TestRegistry;
  let front: CountingProxy;
  let containerd: ChildProcess;
  let socket: string;

  const ctr = async (...args: string[]) => (await run("ctr", ["--address", socket, "--namespace", "lain-test", ...args], { timeout: 120_000 })).stdout;

  beforeAll(async () => {
    work = await tempDir("lain-containerd-");
    peer = await startTestRegistry();
    mirror = await startTestRegistry({ extraYaml: `proxy:\n  remoteurl: ${peer.url}` });
    front = await CountingProxy.start(mirror.url);
    socket = join(work, "containerd.sock");
    const config = join(work, "config.toml");
    // Only what a pull needs: no CRI, no network plugins.
    await writeFile(config, 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n');
    containerd = spawn("containerd", ["--config", config, "--root", join(work, "root"), "--state", join(work, "state"), "--address", socket], {
      stdio: "ignore",
    });
    for (let i = 0; i < 100 && !(await stat(socket).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
    await run("ctr", ["--address", socket, "version"], { timeout: 10_000 });
    const hosts = join(work, "certs.d", HOST);
    await mkdir(hosts, { recursive: true });
    await writeFile(join(hosts, "hosts.toml"), `server = "https://${HOST}"\n\n[host."${front.url}"]\n  capabilities = ["pull", "resolve"]\n`);
  });
  afterAll(async () => {
    containerd?.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 200));
    await front?.close();
    await mirror?.close();
    await peer?.close();
    await rm(work, { recursive: true, force: true });
  });

  it("resolves and pulls an image of the cluster's registry from the node's mirror, with ?ns=", async () => {
    const image = randomImage({ layers: 2, layerSize: 100_000 });
    await pushImage(peer.url, "lain/app", "v1", image);
    await ctr("images", "pull", "--snapshotter", "native", "--hosts-dir", join(work, "certs.d"), `${HOST}/lain/app:v1`);

    const listed = await ctr("images", "ls");
    expect(listed).toContain(`${HOST}/lain/app:v1`);
    expect(listed).toContain(image.manifest.digest);
    const asked = front.seen.map((s) => s.path);
    expect(asked.filter((p) => p.startsWith("/v2/lain/app/")).length).toBeGreaterThanOrEqual(4);
    expect(asked.filter((p) => p.startsWith("/v2/lain/app/")).every((p) => p.includes(`ns=${HOST}`))).toBe(true);
    expect(front.count("GET", new RegExp(`/v2/lain/app/blobs/${image.layers[1]!.digest}`))).toBe(1);
    expect(front.seen.every((s) => s.status < 400)).toBe(true);
  });
});
