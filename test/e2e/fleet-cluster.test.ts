import { createHash, randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FleetCluster } from "../helpers/fleet-cluster.js";
import { canBuildNetworks } from "../helpers/hosts.js";
import { sample } from "../helpers/metrics.js";
import { tempDir } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const available = ["docker-registry", "etcd", "curl"].every(hasTool) && canBuildNetworks();
const MiB = 1024 * 1024;
/** Every NIC's rate, each way: slow enough that a blob takes seconds, so a relay can be killed mid-blob. */
const RATE_MBIT = 40;
const BLOB_MIB = 16;

/**
 * The fleet on hosts of their own (network namespaces, every NIC shaped): a rollout to four node
 * mirrors relays the blob through the mirrors receiving it (proxy.siblings.fanout 1: a chain),
 * so no NIC sends more than one copy, and a relay that dies is nobody's problem.
 */
describe.skipIf(!available)("fleet on a cluster of hosts: the blob is relayed", () => {
  let cluster: FleetCluster | undefined;
  let work: string | undefined;

  afterEach(async () => {
    await cluster?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
    cluster = undefined;
  });

  async function start(): Promise<{ cluster: FleetCluster; digest: string; size: number }> {
    work = await tempDir("lain-fleet-cluster-");
    cluster = await FleetCluster.start({ nodes: 4, rateMbit: RATE_MBIT, mirror: "lain", work });
    const content = randomBytes(BLOB_MIB * MiB);
    const digest = `sha256:${createHash("sha256").update(content).digest("hex")}`;
    await writeFile(join(work, "blob"), content);
    await cluster.pushBlob("bench/app", join(work, "blob"), digest);
    return { cluster, digest, size: content.length };
  }

  /** The GETs of a blob the primary answered, from its access log. */
  const primaryGets = (c: FleetCluster, digest: string) => (c.services.get("primary")?.fullOutput().match(new RegExp(`"GET /v2/bench/app/blobs/${digest} HTTP/1\\.1" 20[06] `, "g")) ?? []).length;

  it("a rollout to four nodes: byte-exact everywhere, one GET at the primary, no NIC sending more than one copy", async () => {
    const { cluster: c, digest, size } = await start();
    const rollout = await c.rollout("bench/app", digest);
    expect(rollout.wrong).toBe(0);
    expect(primaryGets(c, digest)).toBe(1);
    // A copy, plus the HTTP and TCP around it.
    expect(rollout.primaryEgressBytes / size).toBeLessThan(1.1);
    expect(Math.max(...rollout.nodeEgressBytes) / size).toBeLessThan(1.1);
    // Three of the four nodes got it from a sibling: the blob went down a chain, not from one node to all.
    expect(rollout.nodeEgressBytes.filter((bytes) => bytes > size / 2)).toHaveLength(3);
    // The mirrors' own account: three streams to siblings, two of the four asked sent on to a relay.
    const metrics = await Promise.all(c.nodes.map(async (n) => (await n.http("GET", `${c.nodeUrl(n)}/metrics`)).text));
    const total = (name: string) => metrics.reduce((sum, text) => sum + sample(text, name), 0);
    expect(total("registry_proxy_sibling_bytes_total")).toBe(3 * size);
    expect(total("registry_proxy_sibling_relays_total")).toBe(2);
    expect(total("registry_proxy_sibling_streams")).toBe(0);
  }, 180_000);

  /**
   * Every node pulls at once; once a node has sent a quarter of the blob on (a relay), `fail`
   * strikes it. Answers which node it struck and whether each other node's client got the blob.
   */
  async function rolloutWhileARelayFails(fail: (c: FleetCluster, relay: string) => Promise<void>): Promise<{ relay: string; wrong: string[] }> {
    const { cluster: c, digest, size } = await start();
    const pulls = c.nodes.map((node) => c.pull(node, "bench/app", digest).then((right) => ({ node: node.name, right })));
    let relay: string | undefined;
    await until(async () => {
      const sent = await Promise.all(c.nodes.map(async (n) => ({ name: n.name, tx: (await c.network.counters(n.name)).txBytes })));
      relay = sent.find((s) => s.tx > size / 4)?.name;
      return relay !== undefined;
    }, "a node to relay a quarter of the blob", 60_000);
    const struck = relay ?? "";
    await fail(c, struck);
    // The struck node's own client waits on its mirror (a stopped one answers nobody): not awaited.
    const others = await Promise.all(pulls.filter((_, i) => c.nodes[i]?.name !== struck));
    return { relay: struck, wrong: others.filter((r) => !r.right).map((r) => r.node) };
  }

  it("kill -9 of a relay mid-blob: every other node's client still gets the whole blob, byte-exact", async () => {
    const { wrong } = await rolloutWhileARelayFails(async (c, relay) => c.services.get(relay)?.stop("SIGKILL"));
    expect(wrong).toEqual([]);
  }, 180_000);

  it("a relay stopped mid-blob (SIGSTOP): the nodes below it go on from the primary, byte-exact", async () => {
    let stopped: number | undefined;
    const { wrong } = await rolloutWhileARelayFails(async (c, relay) => {
      stopped = c.services.get(relay)?.child.pid;
      if (stopped !== undefined) process.kill(stopped, "SIGSTOP");
    });
    if (stopped !== undefined) process.kill(stopped, "SIGCONT");
    expect(wrong).toEqual([]);
  }, 180_000);

  it("a relay cut off the network mid-blob: the nodes below it go on from the primary, byte-exact", async () => {
    const { wrong } = await rolloutWhileARelayFails((c, relay) => c.network.cut(relay));
    expect(wrong).toEqual([]);
  }, 180_000);
});
