import { rm } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import type { RelayView } from "../../src/proxy/relay.js";
import { FleetCluster, type FleetClusterOptions } from "../helpers/fleet-cluster.js";
import { canBuildNetworks } from "../helpers/hosts.js";
import { sample } from "../helpers/metrics.js";
import { tempDir } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const available = ["docker-registry", "etcd", "curl", "iptables"].every(hasTool) && canBuildNetworks();
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

  async function startCluster(slower?: FleetClusterOptions["slower"]): Promise<FleetCluster> {
    work = await tempDir("lain-fleet-cluster-");
    cluster = await FleetCluster.start({ nodes: 4, rateMbit: RATE_MBIT, mirror: "lain", work, slower });
    return cluster;
  }

  /** The cluster, and a blob of BLOB_MIB in its primary. */
  async function start(): Promise<{ cluster: FleetCluster; digest: string; size: number }> {
    const c = await startCluster();
    const { digest, size } = await c.pushRandomBlob("bench/app", work ?? "", BLOB_MIB);
    return { cluster: c, digest, size };
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

  it("1% of the packets lost on every NIC, each way: every client gets the blob byte-exact", async () => {
    const { cluster: c, digest } = await start();
    for (const host of [c.primary, ...c.nodes]) await c.network.lose(host.name, 1);
    const rollout = await c.rollout("bench/app", digest);
    expect(rollout.wrong).toBe(0);
    // The loss was there: every host dropped packets.
    for (const host of [c.primary, ...c.nodes]) expect(await c.network.dropped(host.name)).toBeGreaterThan(0);
  }, 300_000);

  /** Each node's mirror metrics now, by node name. */
  async function nodeMetrics(c: FleetCluster): Promise<Map<string, (name: string) => number>> {
    const texts = await Promise.all(c.nodes.map(async (n) => [n.name, (await n.http("GET", `${c.nodeUrl(n)}/metrics`)).text] as const));
    return new Map(texts.map(([name, text]) => [name, (metric: string) => sample(text, metric)]));
  }

  it("a node on a link ten times slower is the parent of no fast node, whether or not it owns the blob", async () => {
    const SLOW = 3;
    const c = await startCluster({ nodes: [SLOW], factor: 10 });
    const dir = work ?? "";
    const slow = c.nodes[SLOW];
    if (!slow) throw new Error("no slow node");
    // Each mirror learns its link's rate from fills of its own: blobs it owns, fetched from the primary alone.
    await c.learnLinkRates(dir);
    const learnt = await nodeMetrics(c);
    const rate = (name: string) => learnt.get(name)?.("registry_proxy_link_rate_bytes") ?? 0;
    const fastest = Math.min(...c.nodes.filter((n) => n !== slow).map((n) => rate(n.name)));
    expect(rate(slow.name)).toBeGreaterThan(0);
    expect(rate(slow.name) * 4).toBeLessThan(fastest);

    const fastOwner = c.nodes[0];
    if (!fastOwner) throw new Error("no node 0");
    for (const owner of [fastOwner, slow]) {
      const { digest, size } = await c.pushRandomBlob("bench/app", dir, 4, owner);
      const rollout = await c.rollout("bench/app", digest);
      expect(rollout.wrong).toBe(0);
      // The slow node sent nothing on: no sibling got the blob from it.
      expect((rollout.nodeEgressBytes[SLOW] ?? 0) / size).toBeLessThan(0.1);
      // Its own fill crossed the primary's link; when it owns the blob, the first fast asker's did too.
      expect(primaryGets(c, digest)).toBe(owner === slow ? 2 : 1);
      // A fast parent serves its fanout, and the slow node's copy at most besides (plus the TCP and HTTP around them).
      expect(Math.max(...rollout.nodeEgressBytes) / size).toBeLessThan(2.2);
    }
    const after = await nodeMetrics(c);
    expect(after.get(slow.name)?.("registry_proxy_sibling_bytes_total")).toBe(0);
    // Owning the second blob, it sent the first fast asker upstream and the others to it.
    expect(after.get(slow.name)?.("registry_proxy_sibling_declines_total")).toBe(1);
    expect(after.get(slow.name)?.("registry_proxy_sibling_relays_total")).toBe(2);
    // The console shows that relay as its owner recorded it.
    const overview = JSON.parse((await slow.http("GET", `${c.nodeUrl(slow)}/ui/api/overview`)).text) as { mirror: { siblings: { relays: RelayView[] } } };
    const sources = overview.mirror.siblings.relays[0]?.receivers.map((r) => r.source) ?? [];
    expect(sources.filter((s) => s === "upstream")).toHaveLength(1);
    expect(sources.filter((s) => s.startsWith("http://"))).toHaveLength(2);
  }, 240_000);
});
