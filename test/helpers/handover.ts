import { spawn, type ChildProcess } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startEtcd, type RunningEtcd } from "./etcd.js";
import { call } from "./http.js";
import { startNginx, writeNginxConfig } from "./nginx.js";
import { cliArgs, freePort, startLainProcess, type ServerProcess } from "./process.js";
import { tempDir } from "./registry.js";
import { until } from "./until.js";

export interface InstanceOptions {
  /** Its port (a restart keeps its address); a free one when unset. */
  port?: number;
  /** More configuration lines (auth, proxy). */
  extra?: string[];
}

/**
 * The webrouter's setting on one machine: etcd, lain instances that register in it (primaries on
 * one shared store, mirrors each on their own), `lain-registry upstreams` writing nginx's
 * upstream file from etcd, and nginx in front at `front`. Everything lives under `work`.
 */
export class HandoverHarness {
  readonly instances: ServerProcess[] = [];
  /** nginx's upstream file. */
  readonly upstreamFile: string;
  /** The primaries' shared store. */
  readonly store: string;
  /** One line per nginx reload the upstreams command asked for. */
  readonly reloads: string;
  private nginx: ChildProcess | undefined;
  private watcher: ChildProcess | undefined;
  private watched = "";

  private constructor(
    readonly work: string,
    readonly etcd: RunningEtcd,
    readonly front: string,
    readonly nginxConf: string,
  ) {
    this.upstreamFile = join(work, "registry.upstreams");
    this.store = join(work, "primary-store");
    this.reloads = join(work, "reloads");
  }

  static async start(prefix: string): Promise<HandoverHarness> {
    const work = await tempDir(prefix);
    const etcd = await startEtcd();
    const front = `http://127.0.0.1:${await freePort()}`;
    const nginxConf = await writeNginxConfig(work, new URL(front).host, join(work, "registry.upstreams"));
    return new HandoverHarness(work, etcd, front, nginxConf);
  }

  config(name: string): string {
    return join(this.work, `${name}.yml`);
  }

  /** A lain instance registered in etcd with this role; a primary serves the shared store, a mirror its own. */
  async startInstance(name: string, role: "primary" | "mirror", options: InstanceOptions = {}): Promise<ServerProcess> {
    const port = options.port ?? (await freePort());
    const root = role === "primary" ? this.store : join(this.work, `${name}-store`);
    await writeFile(
      this.config(name),
      [
        "version: 0.1",
        "log: {level: warn}",
        `storage: {filesystem: {rootdirectory: ${root}}, delete: {enabled: true}}`,
        "http: {secret: shared-secret, debug: {prometheus: {enabled: true, path: /metrics}}}",
        `etcd: {endpoints: ["${this.etcd.endpoint}"]}`,
        `cluster: {role: ${role}, advertise: "http://127.0.0.1:${port}", ttl: 2s, drain: 5s}`,
        ...(options.extra ?? []),
      ].join("\n"),
    );
    const instance = await startLainProcess(this.config(name), port);
    this.instances.push(instance);
    return instance;
  }

  /** Keeps the upstream file in step with etcd (run with `config`'s etcd section), reloading nginx on each change. */
  startWatcher(config: string): void {
    this.watcher = spawn(process.execPath, cliArgs("upstreams", config, "--out", this.upstreamFile, "--reload", `echo reload >> ${this.reloads}; nginx -c ${this.nginxConf} -s reload 2>/dev/null || true`), {
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const stream of [this.watcher.stdout, this.watcher.stderr]) stream?.on("data", (chunk: Buffer) => (this.watched += chunk.toString("utf8")));
  }

  /** What the upstreams command has logged so far. */
  watcherLog(): string {
    return this.watched;
  }

  async startNginx(): Promise<void> {
    this.nginx = startNginx(this.nginxConf);
    // Any answer but nginx's own 502: an instance answered through it (401 where auth is on).
    await until(async () => ![undefined, 502].includes((await call("GET", `${this.front}/v2/`).catch(() => undefined))?.status), "nginx to reach an instance");
  }

  async reloadNginx(): Promise<void> {
    await new Promise<void>((resolve) => spawn("nginx", ["-c", this.nginxConf, "-s", "reload"], { stdio: "ignore" }).once("exit", () => resolve()));
  }

  /** The `server` lines of the upstream file now. */
  async upstreamServers(): Promise<string[]> {
    return (await readFile(this.upstreamFile, "utf8").catch(() => "")).split("\n").filter((l) => l.includes("server "));
  }

  async close(): Promise<void> {
    this.watcher?.kill("SIGTERM");
    this.nginx?.kill("SIGTERM");
    for (const instance of this.instances) await instance.stop("SIGKILL");
    await this.etcd.stop();
    await rm(this.work, { recursive: true, force: true });
  }
}
