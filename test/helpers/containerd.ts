import { execFile, spawn } from "node:child_process";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface RunningContainerd {
  /** Runs ctr against this daemon in the test's namespace; its stdout. */
  ctr(...args: string[]): Promise<string>;
  /** Writes the hosts.toml that sends pulls of `host`'s images to a plain-HTTP mirror; the --hosts-dir to pass. */
  mirrorHost(host: string, mirrorUrl: string, name?: string): Promise<string>;
  stop(): Promise<void>;
}

/** A containerd daemon with its root, state and socket under `work`: only what a pull needs (no CRI, no network plugins). */
export async function startContainerd(work: string): Promise<RunningContainerd> {
  await mkdir(work, { recursive: true });
  const socket = join(work, "containerd.sock");
  const config = join(work, "config.toml");
  await writeFile(config, 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n');
  const daemon = spawn("containerd", ["--config", config, "--root", join(work, "root"), "--state", join(work, "state"), "--address", socket], {
    stdio: "ignore",
  });
  for (let i = 0; i < 100 && !(await stat(socket).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
  await run("ctr", ["--address", socket, "version"], { timeout: 10_000 });
  return {
    ctr: async (...args) => (await run("ctr", ["--address", socket, "--namespace", "lain-test", ...args], { timeout: 120_000 })).stdout,
    mirrorHost: async (host, mirrorUrl, name = "certs.d") => {
      const dir = join(work, name);
      await mkdir(join(dir, host), { recursive: true });
      await writeFile(join(dir, host, "hosts.toml"), `server = "https://${host}"\n\n[host."${mirrorUrl}"]\n  capabilities = ["pull", "resolve"]\n`);
      return dir;
    },
    stop: async () => {
      if (daemon.exitCode !== null) return;
      const exited = new Promise((resolve) => daemon.once("exit", resolve));
      daemon.kill("SIGTERM");
      await exited;
    },
  };
}
