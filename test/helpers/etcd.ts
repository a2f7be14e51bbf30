import { spawn, type ChildProcess } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { freePort } from "./process.js";
import { tempDir } from "./registry.js";

export interface RunningEtcd {
  endpoint: string;
  /** Kills the server (the data dir stays, for a restart). */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function waitHealthy(endpoint: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}`);
    const ok = await fetch(`${endpoint}/health`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${endpoint} did not become healthy`);
}

/** Debian's etcd-server as a throw-away single member on 127.0.0.1 with a temporary data dir. */
export async function startEtcd(): Promise<RunningEtcd> {
  const dir = await tempDir("lain-etcd-");
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn(
      "etcd",
      [
        "--name", "test", "--data-dir", join(dir, "data"),
        "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
        "--listen-peer-urls", `http://127.0.0.1:${peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
        "--initial-cluster", `test=http://127.0.0.1:${peer}`, "--log-level", "error",
      ],
      { stdio: "ignore" },
    );
    await waitHealthy(endpoint, child);
  };
  const kill = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child!.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  };
  await launch();
  return {
    endpoint,
    kill,
    restart: launch,
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
