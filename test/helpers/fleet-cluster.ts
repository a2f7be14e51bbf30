import { createHash, randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { rendezvousOwner } from "../../src/proxy/siblings.js";
import { distributionEnv } from "./distribution.js";
import { TestNetwork, type Host } from "./hosts.js";
import { METRICS_ON_MAIN_PORT, sample } from "./metrics.js";
import { cliArgs, type Supervised } from "./process.js";
import { until } from "./until.js";

/** What runs on every node: a lain mirror with its fleet (siblings), one without, or distribution's proxy. */
export type NodeMirror = "lain" | "lain without siblings" | "distribution";

export interface FleetClusterOptions {
  nodes: number;
  /** Every host's NIC, each way, in Mbit/s. */
  rateMbit: number;
  mirror: NodeMirror;
  /** Where configurations and stores go (the caller removes it). */
  work: string;
  /** Nodes (by index) whose NIC is this much slower than the others'. */
  slower?: { nodes: number[]; factor: number };
  /** proxy.siblings.fanout of the lain mirrors (their default when not given). */
  fanout?: number;
}

/** A rollout: every node's client pulling one blob from its own node mirror at the same moment. */
export interface Rollout {
  /** From the first request to the last byte of the last client. */
  seconds: number;
  /** Clients that got bytes other than the blob's (a wrong digest, a short body or an error). */
  wrong: number;
  /** Bytes each host's NIC sent during the rollout. */
  primaryEgressBytes: number;
  nodeEgressBytes: number[];
  /** When each pulling node's client had its last byte, from the first request. */
  nodeSeconds: number[];
}

const PORT = 5000;

/**
 * A cluster on a network of its own (network namespaces, one NIC each, shaped each way): a
 * primary host with Debian's docker-registry and etcd, and node hosts each running a node
 * mirror of it. What the fleet test and the bench's cluster rows share.
 */
export class FleetCluster {
  /** The primary's docker-registry, and each node's mirror, by host name. */
  readonly services = new Map<string, Supervised>();

  private constructor(
    readonly network: TestNetwork,
    readonly primary: Host,
    readonly nodes: Host[],
  ) {}

  get primaryUrl(): string {
    return `http://${this.primary.address}:${PORT}`;
  }

  nodeUrl(node: Host): string {
    return `http://${node.address}:${PORT}`;
  }

  static async start(options: FleetClusterOptions): Promise<FleetCluster> {
    const names = ["primary", ...Array.from({ length: options.nodes }, (_, i) => `node-${i}`)];
    const network = await TestNetwork.create(names, 33);
    const cluster = new FleetCluster(
      network,
      network.host("primary"),
      names.slice(1).map((name) => network.host(name)),
    );
    try {
      for (const [i, name] of names.entries()) {
        const slower = i > 0 && options.slower?.nodes.includes(i - 1);
        await network.shape(name, slower ? options.rateMbit / (options.slower?.factor ?? 1) : options.rateMbit);
      }
      await cluster.startPrimary(options.work, options.mirror === "lain");
      await Promise.all(cluster.nodes.map((node) => cluster.startNode(node, options)));
      if (options.mirror === "lain") {
        // Every node knows the whole fleet before anything is pulled.
        for (const node of cluster.nodes) {
          await until(async () => sample((await node.http("GET", `${cluster.nodeUrl(node)}/metrics`)).text, "registry_proxy_siblings") === options.nodes, `${node.name} to know the fleet`);
        }
      }
    } catch (err) {
      await network.destroy();
      throw err;
    }
    return cluster;
  }

  private async startPrimary(work: string, withEtcd: boolean): Promise<void> {
    const { address } = this.primary;
    if (withEtcd) {
      const client = `http://${address}:2379`;
      const peer = `http://${address}:2380`;
      await this.primary.serve(
        "etcd",
        ["--name", "fleet", "--data-dir", join(work, "etcd"), "--listen-client-urls", client, "--advertise-client-urls", client,
          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `fleet=${peer}`, "--log-level", "error"],
        `${client}/health`,
      );
    }
    const config = join(work, "primary.yml");
    await writeFile(config, `version: 0.1\nlog: {level: info}\nstorage: {filesystem: {rootdirectory: ${join(work, "primary")}}}\nhttp: {addr: "${address}:${PORT}", secret: primary}\n`);
    this.services.set("primary", await this.primary.serve("docker-registry", ["serve", config], `${this.primaryUrl}/v2/`, distributionEnv()));
  }

  private async startNode(node: Host, options: FleetClusterOptions): Promise<void> {
    const config = join(options.work, `${node.name}.yml`);
    const store = join(options.work, node.name);
    const url = `${this.nodeUrl(node)}/v2/`;
    if (options.mirror === "distribution") {
      await writeFile(config, `version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: ${store}}}\nhttp: {addr: "${node.address}:${PORT}", secret: node}\nproxy: {remoteurl: "${this.primaryUrl}"}\n`);
      this.services.set(node.name, await node.serve("docker-registry", ["serve", config], url, distributionEnv()));
      return;
    }
    const fleet = options.mirror === "lain";
    await writeFile(
      config,
      [
        "version: 0.1",
        "log: {level: warn}",
        `storage: {filesystem: {rootdirectory: ${store}}}`,
        "http:",
        `  addr: "${node.address}:${PORT}"`,
        "  secret: fleet",
        METRICS_ON_MAIN_PORT,
        "console: {enabled: true}",
        ...(fleet ? [`etcd: {endpoints: ["http://${this.primary.address}:2379"]}`, `cluster: {advertise: "${this.nodeUrl(node)}", prefix: /lain/registry/nodes, ttl: 5s}`] : []),
        "proxy:",
        `  remoteurl: ${this.primaryUrl}`,
        "  namespaces: [bench]",
        "  unauthenticated: true",
        `  siblings: {enabled: ${fleet}${options.fanout === undefined ? "" : `, fanout: ${options.fanout}`}}`,
      ].join("\n"),
    );
    this.services.set(node.name, await node.serve(process.execPath, cliArgs("serve", config), url));
  }

  /** Stores the file as a blob of `repository` in the primary, sent from the primary host itself. */
  async pushBlob(repository: string, file: string, digest: string): Promise<void> {
    const base = `${this.primaryUrl}/v2/${repository}/blobs/uploads/`;
    const script = `set -e
location=$(curl -s -f --noproxy '*' -X POST -D - -o /dev/null "${base}" | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p')
case "$location" in http*) ;; *) location="${this.primaryUrl}$location" ;; esac
case "$location" in *\\?*) sep='&' ;; *) sep='?' ;; esac
curl -s -f --noproxy '*' -X PUT -H 'content-type: application/octet-stream' --data-binary @${file} "$location\${sep}digest=${digest}" -o /dev/null`;
    const ran = await this.primary.run("sh", ["-c", script], { timeoutMs: 300_000 });
    if (ran.code !== 0) throw new Error(`pushing ${digest} to the primary failed: ${ran.stderr}`);
  }

  /**
   * Stores a random blob of `mib` MiB in the primary (through a file in `dir`); with `owner`, one
   * that this node owns among the fleet's mirrors (rendezvous over their addresses).
   */
  async pushRandomBlob(repository: string, dir: string, mib: number, owner?: Host): Promise<{ digest: string; size: number }> {
    const members = this.nodes.map((n) => this.nodeUrl(n));
    for (;;) {
      const content = randomBytes(mib * 1024 * 1024);
      const digest = `sha256:${createHash("sha256").update(content).digest("hex")}`;
      if (owner && rendezvousOwner(digest, members) !== this.nodeUrl(owner)) continue;
      const file = join(dir, digest.slice(7, 19));
      await writeFile(file, content);
      await this.pushBlob(repository, file, digest);
      await rm(file);
      return { digest, size: content.length };
    }
  }

  /**
   * Lets every lain mirror time its link (proxy/link-rate.ts): each, in turn, fills three blobs
   * of 2 MiB that it owns from the primary, alone on the network.
   */
  async learnLinkRates(dir: string): Promise<void> {
    for (const node of this.nodes) {
      for (let i = 0; i < 3; i++) {
        const { digest } = await this.pushRandomBlob("bench/warmup", dir, 2, node);
        if (!(await this.pull(node, "bench/warmup", digest))) throw new Error(`${node.name} could not pull its warm-up blob`);
      }
    }
  }

  /** Every node's client (curl, on the node) pulls the blob from its own node mirror at the same moment. */
  async rollout(repository: string, digest: string, nodes: readonly Host[] = this.nodes): Promise<Rollout> {
    const hosts = [this.primary, ...this.nodes];
    const before = await Promise.all(hosts.map((h) => this.network.counters(h.name)));
    const started = performance.now();
    const nodeSeconds: number[] = [];
    const pulls = await Promise.all(
      nodes.map(async (node, i) => {
        const right = await this.pull(node, repository, digest);
        nodeSeconds[i] = (performance.now() - started) / 1000;
        return right;
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const after = await Promise.all(hosts.map((h) => this.network.counters(h.name)));
    const egress = after.map((a, i) => a.txBytes - (before[i]?.txBytes ?? 0));
    return {
      seconds,
      wrong: pulls.filter((right) => !right).length,
      primaryEgressBytes: egress[0] ?? 0,
      nodeEgressBytes: egress.slice(1),
      nodeSeconds,
    };
  }

  /** One pull by the node's client from its own mirror: whether it got exactly the blob. */
  async pull(node: Host, repository: string, digest: string): Promise<boolean> {
    const ran = await node.run("sh", ["-c", `curl -s -f --noproxy '*' "${this.nodeUrl(node)}/v2/${repository}/blobs/${digest}" | sha256sum`], { timeoutMs: 600_000 });
    return ran.code === 0 && ran.stdout.startsWith(digest.replace(/^sha256:/, ""));
  }

  destroy(): Promise<void> {
    return this.network.destroy();
  }
}
