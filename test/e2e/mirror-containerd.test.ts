import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startContainerd, type RunningContainerd } from "../helpers/containerd.js";
import { CountingProxy } from "../helpers/counting-proxy.js";
import { pushImage, randomImage } from "../helpers/oci.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";

const available = hasTool("containerd") && hasTool("ctr");
const HOST = "registry.lain.local";

describe.skipIf(!available)("containerd pulls through the mirror (hosts.toml)", () => {
  let work: string;
  let peer: TestRegistry;
  let mirror: TestRegistry;
  let front: CountingProxy;
  let containerd: RunningContainerd;
  let hostsDir: string;

  beforeAll(async () => {
    work = await tempDir("lain-containerd-");
    peer = await startTestRegistry();
    mirror = await startTestRegistry({ extraYaml: `proxy:\n  remoteurl: ${peer.url}` });
    front = await CountingProxy.start(mirror.url);
    containerd = await startContainerd(work);
    hostsDir = await containerd.mirrorHost(HOST, front.url);
  });
  afterAll(async () => {
    await containerd?.stop();
    await front?.close();
    await mirror?.close();
    await peer?.close();
    await rm(work, { recursive: true, force: true });
  });

  it("resolves and pulls an image of the cluster's registry from the node's mirror, with ?ns=", async () => {
    const image = randomImage({ layers: 2, layerSize: 100_000 });
    await pushImage(peer.url, "lain/app", "v1", image);
    await containerd.ctr("images", "pull", "--snapshotter", "native", "--hosts-dir", hostsDir, `${HOST}/lain/app:v1`);

    const listed = await containerd.ctr("images", "ls");
    expect(listed).toContain(`${HOST}/lain/app:v1`);
    expect(listed).toContain(image.manifest.digest);
    const asked = front.seen.map((s) => s.path);
    expect(asked.filter((p) => p.startsWith("/v2/lain/app/")).length).toBeGreaterThanOrEqual(4);
    expect(asked.filter((p) => p.startsWith("/v2/lain/app/")).every((p) => p.includes(`ns=${HOST}`))).toBe(true);
    expect(front.count("GET", new RegExp(`/v2/lain/app/blobs/${image.layers[1]!.digest}`))).toBe(1);
    expect(front.seen.every((s) => s.status < 400)).toBe(true);
  });
});
