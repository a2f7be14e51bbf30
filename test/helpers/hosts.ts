import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { supervise, type Supervised } from "./process.js";

const run = promisify(execFile);

/** Namespaces of this helper are named `lrt-<pid of the test process>-<network>-<host>`. */
const PREFIX = "lrt";

async function ip(...args: string[]): Promise<void> {
  await run("ip", args);
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HttpReply {
  status: number;
  /** Lower-case names; a repeated header's values joined with ", ". */
  headers: Record<string, string>;
  text: string;
}

export interface HttpOptions {
  headers?: Record<string, string>;
  body?: Buffer | string;
}

/**
 * A host of a test network: a network namespace with its loopback and one NIC (eth0) on the
 * network's switch. Whatever runs on it sees only that: 127.0.0.1 is the host's own.
 */
export class Host {
  private readonly children = new Set<ChildProcess>();

  constructor(
    readonly name: string,
    /** Its `ip netns` name. */
    readonly ns: string,
    /** Its address on the network (eth0). */
    readonly address: string,
  ) {}

  /** Runs a command on this host to its end (bounded): its exit code and output. */
  run(command: string, args: string[], options: { input?: Buffer | string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
    return new Promise((resolve, reject) => {
      const child = spawn("ip", ["netns", "exec", this.ns, command, ...args], { env: options.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
      child.on("error", reject);
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      child.stdin.on("error", () => undefined);
      child.stdin.end(options.input);
    });
  }

  /** Starts a long-running command on this host; the network stops it when it is destroyed. */
  spawn(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
    const child = spawn("ip", ["netns", "exec", this.ns, command, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }

  /**
   * Starts a server on this host and waits (bounded) until `readyUrl` answers with any HTTP
   * status; fails if it exits first.
   */
  async serve(command: string, args: string[], readyUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<Supervised> {
    const service = supervise(this.spawn(command, args, env));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (service.child.exitCode !== null) throw new Error(`${command} on ${this.name} exited with ${service.child.exitCode}: ${service.output()}`);
      const answered = await this.http("GET", readyUrl).then(() => true, () => false);
      if (answered) return service;
      if (Date.now() > deadline) {
        await service.stop("SIGKILL");
        throw new Error(`${command} on ${this.name} did not answer at ${readyUrl} within 20 s: ${service.output()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** One HTTP exchange from this host, made by curl (no proxy, no retries). */
  async http(method: string, url: string, options: HttpOptions = {}): Promise<HttpReply> {
    const out = join(tmpdir(), `lrt-curl-${randomBytes(6).toString("hex")}`);
    const args = ["-s", "-S", "--noproxy", "*", "--max-time", "30", "-X", method, "-o", out, "-w", "%{http_code}\n%{header_json}"];
    if (method === "HEAD") args.push("-I");
    for (const [name, value] of Object.entries(options.headers ?? {})) args.push("-H", `${name}: ${value}`);
    if (options.body !== undefined) args.push("--data-binary", "@-");
    args.push(url);
    try {
      const ran = await this.run("curl", args, { input: options.body ?? "" });
      if (ran.code !== 0) throw new Error(`curl ${method} ${url} from ${this.name}: exit ${ran.code}: ${ran.stderr.trim()}`);
      const newline = ran.stdout.indexOf("\n");
      const raw = JSON.parse(ran.stdout.slice(newline + 1)) as Record<string, string[]>;
      const headers = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k.toLowerCase(), v.join(", ")]));
      const text = await readFile(out, "utf8").catch(() => "");
      return { status: Number(ran.stdout.slice(0, newline)), headers, text };
    } finally {
      await rm(out, { force: true });
    }
  }

  /** Whether a TCP connection to host:port from here is refused or times out, with curl's word for it. */
  async unreachable(url: string): Promise<string | undefined> {
    const ran = await this.run("curl", ["-s", "-S", "--noproxy", "*", "--max-time", "5", "-o", "/dev/null", url]);
    return ran.code === 7 || ran.code === 28 ? ran.stderr.trim() : undefined;
  }

  /** Stops what this host runs (SIGKILL after 5 s of SIGTERM). */
  async stopAll(): Promise<void> {
    await Promise.all(
      [...this.children].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
            child.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill("SIGTERM");
          }),
      ),
    );
  }
}

/**
 * Whether this machine can build test networks (root, and ip with network namespaces), as
 * hasTool says of a binary: with REQUIRE_INTEGRATION=1 (CI) one that cannot fails.
 */
export function canBuildNetworks(): boolean {
  let can = process.getuid?.() === 0;
  try {
    if (can) execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
  } catch {
    can = false;
  }
  if (!can && process.env.REQUIRE_INTEGRATION === "1") throw new Error("network namespaces are required (REQUIRE_INTEGRATION=1): run as root with iproute2");
  return can;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function removeNamespace(ns: string): Promise<void> {
  // A process left in it would keep the namespace (and its addresses) alive after the delete.
  const pids = await run("ip", ["netns", "pids", ns]).then((r) => r.stdout.split(/\s+/).filter(Boolean), () => []);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // gone already
    }
  }
  await ip("netns", "del", ns).catch(() => undefined);
}

/** Namespaces a test process that is gone left behind (it was killed before its teardown). */
async function removeLeftovers(): Promise<void> {
  const { stdout } = await run("ip", ["netns", "list"]);
  const names = stdout.split("\n").map((line) => line.split(" ")[0] ?? "");
  for (const ns of names) {
    const pid = new RegExp(`^${PREFIX}-(\\d+)-`).exec(ns)?.[1];
    if (pid !== undefined && !alive(Number(pid))) await removeNamespace(ns);
  }
}

/**
 * A network of the test's own: hosts as network namespaces, each with one veth NIC on a bridge
 * that lives in a namespace of its own (the switch), addressed 10.<n>.0.<i> inside them only.
 * Nothing of it is visible from the machine's own namespace; `destroy` removes all of it.
 */
export class TestNetwork {
  /** Each host's port on the switch (the other end of its eth0). */
  private readonly ports = new Map<string, string>();

  private constructor(
    private readonly switchNs: string,
    readonly hosts: Map<string, Host>,
  ) {}

  static async create(hostNames: readonly string[], subnet = 31): Promise<TestNetwork> {
    await removeLeftovers();
    const id = `${PREFIX}-${process.pid}-${randomBytes(2).toString("hex")}`;
    const switchNs = `${id}-sw`;
    const network = new TestNetwork(switchNs, new Map());
    try {
      await ip("netns", "add", switchNs);
      await ip("-n", switchNs, "link", "add", "br0", "type", "bridge");
      await ip("-n", switchNs, "link", "set", "br0", "up");
      for (const [i, name] of hostNames.entries()) {
        const ns = `${id}-${name}`;
        const address = `10.${subnet}.0.${i + 1}`;
        await ip("netns", "add", ns);
        network.hosts.set(name, new Host(name, ns, address));
        network.ports.set(name, `p${i}`);
        await ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", `p${i}`, "netns", switchNs);
        await ip("-n", switchNs, "link", "set", `p${i}`, "master", "br0");
        await ip("-n", switchNs, "link", "set", `p${i}`, "up");
        await ip("-n", ns, "addr", "add", `${address}/24`, "dev", "eth0");
        await ip("-n", ns, "link", "set", "eth0", "up");
        await ip("-n", ns, "link", "set", "lo", "up");
      }
    } catch (err) {
      await network.destroy();
      throw err;
    }
    return network;
  }

  host(name: string): Host {
    const host = this.hosts.get(name);
    if (!host) throw new Error(`no host ${name} on this network`);
    return host;
  }

  /**
   * Gives a host's NIC a rate each way, as a real link has: its sending side is shaped on its
   * eth0, its receiving side on its port of the switch (token buckets; `rateMbit` in Mbit/s).
   */
  async shape(name: string, rateMbit: number): Promise<void> {
    const host = this.host(name);
    // A burst of 4 ms at the rate (at least 32 KiB), so a stream keeps the rate without spikes.
    const burst = `${Math.max(32, Math.round((rateMbit * 1e6) / 8 / 250 / 1024))}kb`;
    const tbf = ["root", "tbf", "rate", `${rateMbit}mbit`, "burst", burst, "latency", "50ms"];
    await run("ip", ["netns", "exec", host.ns, "tc", "qdisc", "replace", "dev", "eth0", ...tbf]);
    await run("ip", ["netns", "exec", this.switchNs, "tc", "qdisc", "replace", "dev", this.ports.get(name) ?? "", ...tbf]);
  }

  /**
   * Drops `percent` of a host's packets at random, each way (netfilter's statistic match; this
   * machine's kernel has no netem, which would also delay them).
   */
  async lose(name: string, percent: number): Promise<void> {
    const host = this.host(name);
    const drop = ["-m", "statistic", "--mode", "random", "--probability", String(percent / 100), "-j", "DROP"];
    await run("ip", ["netns", "exec", host.ns, "iptables", "-A", "OUTPUT", "-o", "eth0", ...drop]);
    await run("ip", ["netns", "exec", host.ns, "iptables", "-A", "INPUT", "-i", "eth0", ...drop]);
  }

  /** Packets `lose` has dropped on a host so far, both ways. */
  async dropped(name: string): Promise<number> {
    const host = this.host(name);
    let packets = 0;
    for (const chain of ["OUTPUT", "INPUT"]) {
      const listed = (await run("ip", ["netns", "exec", host.ns, "iptables", "-L", chain, "-v", "-n", "-x"])).stdout;
      for (const line of listed.split("\n")) if (/\sDROP\s/.test(line)) packets += Number(line.trim().split(/\s+/)[0]);
    }
    return packets;
  }

  /** Cuts a host off the network, as a pulled cable: its port on the switch goes down (nothing is reset). */
  async cut(name: string): Promise<void> {
    await run("ip", ["-n", this.switchNs, "link", "set", this.ports.get(name) ?? "", "down"]);
  }

  /** What a host's NIC has sent and received so far (the kernel's counters of its eth0). */
  async counters(name: string): Promise<{ txBytes: number; rxBytes: number }> {
    const host = this.host(name);
    const read = async (what: string) => Number((await run("ip", ["netns", "exec", host.ns, "cat", `/sys/class/net/eth0/statistics/${what}`])).stdout.trim());
    return { txBytes: await read("tx_bytes"), rxBytes: await read("rx_bytes") };
  }

  /** Stops what every host runs, then removes the hosts and the switch. */
  async destroy(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((h) => h.stopAll()));
    for (const host of this.hosts.values()) await removeNamespace(host.ns);
    await removeNamespace(this.switchNs);
  }
}
