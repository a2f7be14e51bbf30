import { createHash } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDistribution } from "../helpers/distribution.js";
import { LimitedLink } from "../helpers/limited-link.js";
import { METRICS_ON_MAIN_PORT, scrape } from "../helpers/metrics.js";
import { freePort, startLainProcess, type ServerProcess } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { buildStargzDaemon, canMountFuse, pushLazyImage, startLazyNode, STARGZ_TOOLS, type LazyImage, type LazyNode } from "../helpers/stargz.js";
import { blobFile } from "../helpers/store.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const available = ["docker-registry", ...STARGZ_TOOLS].every(hasTool) && canMountFuse();
/** The primary's link: the image's large layer takes about 20 s to cross it. */
const LINK_BYTES_PER_SECOND = 1024 * 1024;
const LARGE_MIB = 20;

/**
 * A real lazy client: containerd with the stargz snapshotter (built from Debian's library,
 * test/helpers/stargz/main.go) pulls an eStargz image through a lain node mirror of Debian's
 * docker-registry, the primary behind a slow link, and runs a container that reads one small
 * file while the image's large layer has not crossed the link.
 */
describe.skipIf(!available)("lazy pulls through the node mirror (stargz snapshotter)", () => {
  let work: string;
  let primary: ServerProcess;
  let link: LimitedLink;
  let mirror: ServerProcess;
  let daemon: string;
  let image: LazyImage;
  let host: string;
  const nodes: LazyNode[] = [];

  beforeAll(async () => {
    work = await tempDir("lain-lazy-pull-");
    daemon = await buildStargzDaemon();
    primary = await startDistribution({ root: join(work, "primary"), secret: "primary", configDir: work });
    host = primary.host;
    link = await LimitedLink.start(primary.url, LINK_BYTES_PER_SECOND);
    const config = join(work, "mirror.yml");
    await writeFile(
      config,
      ["version: 0.1", "log: {level: info}", `storage: {filesystem: {rootdirectory: ${join(work, "mirror")}}}`, "http:", "  secret: lazy", METRICS_ON_MAIN_PORT, "proxy:", `  remoteurl: ${link.url}`].join("\n"),
    );
    mirror = await startLainProcess(config, await freePort());
    // The image is built and pushed straight to the primary, by a node of its own.
    const builder = await startLazyNode(join(work, "builder"), daemon, host, host);
    nodes.push(builder);
    image = await pushLazyImage(builder, join(work, "image"), host, "lain/lazy", LARGE_MIB);
  }, 600_000);

  afterAll(async () => {
    for (const node of nodes) await node.stop().catch(() => undefined);
    await mirror?.stop();
    await link?.close();
    await primary?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** The mirror's answers to GETs of the layer, from its access log. */
  const layerAnswers = () =>
    mirror
      .fullOutput()
      .split("\n")
      .filter((line) => line.includes(`/blobs/${image.layer.digest}`) && line.includes('"response completed"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry["http.request.method"] === "GET")
      .map((entry) => entry["http.response.status"]);

  it("runs a container that reads a small file before the layer has crossed the link; the mirror answers the layer with 206s only, then keeps it verified", async () => {
    const node = await startLazyNode(join(work, "node-a"), daemon, host, mirror.host);
    nodes.push(node);
    await node.ctrRemote("images", "rpull", "--plain-http", "--hosts-dir", node.hostsDir, image.estargz);
    const output = await node.runContainer(image.estargz, ["/bin/busybox", "cat", image.small.path]);
    const carried = link.carried;
    expect(output).toBe(image.small.content);
    // The container ran while most of the layer was still on the primary's side of the link.
    expect(carried).toBeLessThan(image.layer.size / 2);
    const answers = layerAnswers();
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.every((status) => status === 206)).toBe(true);
    // The layer never landed in the node's content store: it was read as ranges.
    expect(await node.ctr("content", "ls", "-q")).not.toContain(image.layer.digest);

    // The first range started the whole layer's fill: it completes, verified, into the store.
    await until(async () => (await scrape(`${mirror.url}/metrics`))("registry_proxy_fetches_in_flight") === 0, "the mirror's fill of the layer", 120_000);
    const kept = await readFile(blobFile(join(work, "mirror"), image.layer.digest));
    expect(`sha256:${createHash("sha256").update(kept).digest("hex")}`).toBe(image.layer.digest);
  }, 300_000);

  it("a second node's lazy pull is served from the mirror's store: nothing more of the layer crosses the link", async () => {
    const node = await startLazyNode(join(work, "node-b"), daemon, host, mirror.host);
    nodes.push(node);
    const ranges = async () => {
      const metrics = await scrape(`${mirror.url}/metrics`);
      return (served: string) => metrics("registry_proxy_range_requests_total", { served });
    };
    const before = { carried: link.carried, ranges: await ranges() };
    await node.ctrRemote("images", "rpull", "--plain-http", "--hosts-dir", node.hostsDir, image.estargz);
    expect(await node.runContainer(image.estargz, ["/bin/busybox", "cat", image.small.path])).toBe(image.small.content);
    const after = await ranges();
    // Counted by the metrics: the log the test keeps is only its last few MiB, and its lines shift.
    expect(after("store") - before.ranges("store")).toBeGreaterThan(0);
    expect(layerAnswers().every((status) => status === 206)).toBe(true);
    for (const elsewhere of ["fill", "passthrough"]) expect(after(elsewhere)).toBe(before.ranges(elsewhere));
    // A tag's revalidation and the like: far less than any part of the layer.
    expect(link.carried - before.carried).toBeLessThan(64 * 1024);
  }, 300_000);
});
