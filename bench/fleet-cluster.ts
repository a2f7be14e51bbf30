/**
 * The fleet on a cluster of hosts (network namespaces, every NIC shaped to the same rate each
 * way): a primary (Debian's docker-registry and etcd) and N nodes, each with a node mirror and a
 * client, rolling out one cold blob at once. Unlike the loopback fleet row, every node's NIC is
 * a link here: what one node uploads to the others costs its own NIC's time.
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { canBuildNetworks } from "../test/helpers/hosts.js";
import { FleetCluster, type NodeMirror, type Rollout } from "../test/helpers/fleet-cluster.js";
import { hasTool } from "../test/helpers/tools.js";
import { makeBlobFile, MiB } from "./load.js";

const RATE_MBIT = Number(process.env.BENCH_CLUSTER_MBIT ?? 400);
const BLOB_MIB = Number(process.env.BENCH_CLUSTER_BLOB_MIB ?? 128);
const NODES = (process.env.BENCH_CLUSTER_NODES ?? "8").split(",").map(Number);
/** proxy.siblings.fanout of the lain rows. */
const FANOUTS = (process.env.BENCH_CLUSTER_FANOUT ?? "1,2").split(",").map(Number);
/** How much slower the slow node's NIC is, in the rows with one. */
const SLOW_FACTOR = 10;

/**
 * A lain fleet with its first node's NIC SLOW_FACTOR times slower; `learnt`: every mirror has
 * timed its link first. Its client starts first, so it asks first: placed as it arrives, it would
 * be the first relay.
 */
interface SlowNode {
  learnt: boolean;
}

export interface ClusterRow {
  nodes: number;
  mirror: NodeMirror;
  fanout?: number;
  slowNode?: SlowNode;
  seconds: number;
  /** With a slow node: when the last of the other nodes had the blob, over one pull. */
  fastTimesOnePull?: number;
  /** The rollout's time over one node's pull alone through the same kind of mirror. */
  timesOnePull: number;
  /** Copies of the blob the primary's NIC sent, and the most any node's NIC sent. */
  primaryCopies: number;
  largestNodeCopies: number;
  wrong: number;
}

export interface ClusterMeasures {
  rateMbit: number;
  blobMiB: number;
  /** One node alone pulling a cold blob through its lain mirror. */
  singleSeconds: number;
  rows: ClusterRow[];
}

function copies(bytes: number, blobBytes: number): number {
  return bytes / blobBytes;
}

/** Undefined where the machine cannot build hosts (not root, no iproute2) or lacks the parts. */
export async function measureFleetCluster(work: string, log: (line: string) => void): Promise<ClusterMeasures | undefined> {
  if (!canBuildNetworks() || !["docker-registry", "etcd", "curl"].every(hasTool)) return undefined;
  const dir = join(work, "fleet-cluster");
  await mkdir(dir, { recursive: true });
  let serial = 0;
  const run = async (nodes: number, mirror: NodeMirror, alone: boolean, fanout?: number, slowNode?: SlowNode): Promise<Rollout> => {
    const clusterDir = join(dir, `${mirror.replace(/ /g, "-")}-${nodes}-${serial}`);
    await mkdir(clusterDir, { recursive: true });
    const slower = slowNode && { nodes: [0], factor: SLOW_FACTOR };
    const cluster = await FleetCluster.start({ nodes, rateMbit: RATE_MBIT, mirror, work: clusterDir, fanout, slower });
    try {
      if (slowNode?.learnt) await cluster.learnLinkRates(clusterDir);
      const fresh = await makeBlobFile(join(dir, `blob-${serial++}`), BLOB_MIB * MiB);
      await cluster.pushBlob("bench/app", fresh.path, fresh.digest);
      await rm(fresh.path);
      return await cluster.rollout("bench/app", fresh.digest, alone ? cluster.nodes.slice(0, 1) : cluster.nodes);
    } finally {
      await cluster.destroy();
      await rm(clusterDir, { recursive: true, force: true });
    }
  };
  const blobBytes = BLOB_MIB * MiB;
  const single = await run(1, "lain", true);
  log(`fleet cluster: one node alone, ${single.seconds.toFixed(2)} s`);
  const rows: ClusterRow[] = [];
  const variants: Array<{ mirror: NodeMirror; fanout?: number; slowNode?: SlowNode }> = [
    ...FANOUTS.map((fanout) => ({ mirror: "lain" as const, fanout })),
    { mirror: "lain", slowNode: { learnt: false } },
    { mirror: "lain", slowNode: { learnt: true } },
    { mirror: "lain without siblings" },
    { mirror: "distribution" },
  ];
  for (const nodes of NODES) {
    for (const { mirror, fanout, slowNode } of variants) {
      const rollout = await run(nodes, mirror, false, fanout, slowNode);
      const fast = slowNode && Math.max(...rollout.nodeSeconds.slice(1));
      const row: ClusterRow = {
        nodes,
        mirror,
        fanout,
        slowNode,
        fastTimesOnePull: fast && fast / single.seconds,
        seconds: rollout.seconds,
        timesOnePull: rollout.seconds / single.seconds,
        primaryCopies: copies(rollout.primaryEgressBytes, blobBytes),
        largestNodeCopies: copies(Math.max(...rollout.nodeEgressBytes), blobBytes),
        wrong: rollout.wrong,
      };
      log(`fleet cluster: ${clusterRowName(row)}: ${row.seconds.toFixed(2)} s (${row.timesOnePull.toFixed(1)}x one pull), primary ${row.primaryCopies.toFixed(2)} copies, largest node ${row.largestNodeCopies.toFixed(2)}, wrong ${row.wrong}`);
      rows.push(row);
    }
  }
  return { rateMbit: RATE_MBIT, blobMiB: BLOB_MIB, singleSeconds: single.seconds, rows };
}

/** How a row is named in the log and the results. */
export function clusterRowName(row: ClusterRow): string {
  const fanout = row.fanout === undefined ? "" : `, fanout ${row.fanout}`;
  const slow = row.slowNode ? `, its first node ${SLOW_FACTOR}x slower, ${row.slowNode.learnt ? "rates learnt" : "rates not learnt yet"}` : "";
  return `${row.nodes} nodes, ${row.mirror}${fanout}${slow}`;
}
