import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./process.js";
import { tempDir } from "./registry.js";

const run = promisify(execFile);

export interface S3Server {
  endpoint: string;
  region: string;
  accessKey: string;
  secretKey: string;
}

export interface RunningRgw extends S3Server {
  stop(): Promise<void>;
  /** Stops the gateway alone (SIGKILL), the cluster behind it staying up: S3 refuses connections. */
  stopGateway(): Promise<void>;
  /** Starts the gateway again on the same port, and waits until it answers. */
  startGateway(): Promise<void>;
}

export const RGW_TOOLS = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph"];

/**
 * A throw-away single-node Ceph cluster with the RADOS Gateway: a real S3 server that checks
 * SigV4, on 127.0.0.1, with all data in RAM (memstore). About a second to start.
 */
export async function startRgw(options: { memoryBytes?: number } = {}): Promise<RunningRgw> {
  const dir = await tempDir("lain-rgw-");
  const [port, monPort] = [await freePort(), await freePort()];
  const conf = join(dir, "ceph.conf");
  const fsid = randomUUID();
  const accessKey = "LAINTESTACCESSKEY001";
  const secretKey = "lainTestSecretKey000000000000000000000001";
  await mkdir(join(dir, "log"));
  await mkdir(join(dir, "run"));
  await writeFile(
    conf,
    [
      "[global]",
      `fsid = ${fsid}`,
      `mon host = v2:127.0.0.1:${monPort}`,
      "public addr = 127.0.0.1",
      "cluster addr = 127.0.0.1",
      "ms bind msgr1 = false",
      "auth cluster required = none",
      "auth service required = none",
      "auth client required = none",
      // Without cephx, radosgw's default "secure" monitor mode retries its authentication forever.
      "ms mon client mode = crc",
      `keyring = ${dir}/keyring`,
      `run dir = ${dir}/run`,
      `admin socket = ${dir}/run/$name.asok`,
      `log file = ${dir}/log/$name.log`,
      `mon data = ${dir}/$name`,
      `osd data = ${dir}/$name`,
      "osd pool default size = 1",
      "osd pool default min size = 1",
      "osd pool default pg num = 8",
      "osd pool default pgp num = 8",
      "osd pool default pg autoscale mode = off",
      "osd crush chooseleaf type = 0",
      "mon allow pool size one = true",
      "mon warn on pool no redundancy = false",
      // Each osdmap change waits this long; the first radosgw start makes about twenty.
      "paxos propose interval = 0.01",
      "paxos min wait = 0.001",
      "mon data avail warn = 1",
      "mon data avail crit = 1",
      "osd objectstore = memstore",
      `memstore device bytes = ${options.memoryBytes ?? 4 * 1024 ** 3}`,
      // Without tcp_nodelay small GETs wait ~40 ms (Nagle against delayed ACK).
      `rgw frontends = beast endpoint=127.0.0.1:${port} tcp_nodelay=1`,
      "rgw thread pool size = 32",
      "rgw dynamic resharding = false",
      "rgw gc obj min wait = 60",
      "rgw gc processor period = 60",
      "",
    ].join("\n"),
  );

  const children: ChildProcess[] = [];
  const daemon = (command: string, ...args: string[]) => {
    const child = spawn(command, [...args, "-c", conf], { stdio: "ignore", detached: true });
    children.push(child);
    return child;
  };
  const endpoint = `http://127.0.0.1:${port}`;
  let gateway: ChildProcess | undefined;
  const startGateway = async () => {
    gateway = daemon("radosgw", "-f", "-n", "client.rgw");
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(endpoint).then((r) => r.status === 200, () => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`radosgw did not answer on ${endpoint}; logs in ${dir}/log`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stopGateway = async () => {
    const child = gateway;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  };
  const stop = async () => {
    for (const child of children.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await run("monmaptool", ["--create", "--fsid", fsid, "--addv", "a", `[v2:127.0.0.1:${monPort}]`, join(dir, "monmap")]);
    await run("ceph-mon", ["--mkfs", "-i", "a", "--monmap", join(dir, "monmap"), "-c", conf]);
    daemon("ceph-mon", "-f", "-i", "a");
    const osdUuid = randomUUID();
    const { stdout } = await run("ceph", ["--connect-timeout", "30", "-c", conf, "osd", "new", osdUuid], { timeout: 40_000 });
    const osdId = stdout.trim();
    await mkdir(join(dir, `osd.${osdId}`));
    await run("ceph-osd", ["-i", osdId, "--mkfs", "--osd-uuid", osdUuid, "-c", conf]);
    daemon("ceph-osd", "-f", "-i", osdId);
    await run(
      "radosgw-admin",
      ["user", "create", "--uid=test", "--display-name=test", `--access-key=${accessKey}`, `--secret-key=${secretKey}`, "-c", conf],
      { timeout: 90_000 },
    );
    await startGateway();
    return { endpoint, region: "us-east-1", accessKey, secretKey, stop, stopGateway, startGateway };
  } catch (err) {
    await stop();
    throw err;
  }
}
