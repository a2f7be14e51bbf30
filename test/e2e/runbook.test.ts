import { spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEtcd, type RunningEtcd } from "../helpers/etcd.js";
import { call } from "../helpers/http.js";
import { randomImage, sha256, writeOciLayout } from "../helpers/oci.js";
import { cliArgs, freePort, startLainProcess, supervise, type ServerProcess, type Supervised } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const PRIMARY = join(ROOT, "config/examples/cluster-primary.yml");
const WEBROUTER = join(ROOT, "config/examples/webrouter.yml");
const NGINX = join(ROOT, "config/nginx/webrouter.conf");
const NGINX_TEMP_DIRS = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"];

/**
 * The shipped nginx configuration with only what a test cannot have changed: the port, and the
 * paths nginx writes to or reads from that belong to a real webrouter. Each must be in the file
 * exactly as docs/cluster.md says, or the test fails here.
 */
function webrouterConf(shipped: string, work: string, listen: string, upstreams: string): string {
  const swaps: Array<[string, string]> = [
    ["listen 80;", `listen ${listen};`],
    ["error_log /var/log/nginx/error.log warn;", `error_log ${join(work, "nginx-error.log")} warn;`],
    ["pid /run/nginx.pid;", `pid ${join(work, "nginx.pid")};`],
    ["access_log /var/log/nginx/registry-access.log;", `access_log off;\n${NGINX_TEMP_DIRS.map((d) => `    ${d}_temp_path ${join(work, d)};`).join("\n")}`],
    ["include /etc/nginx/upstream/registry.upstreams;", `include ${upstreams};`],
    ["include /opt/lain-registry/lib/node_modules/lain-registry/config/nginx/registry.conf;", `include ${join(ROOT, "config/nginx/registry.conf")};`],
  ];
  return swaps.reduce((conf, [from, to]) => {
    expect(conf.split(from).length - 1, `config/nginx/webrouter.conf has "${from}" once`).toBe(1);
    return conf.replace(from, to);
  }, shipped);
}

describe.skipIf(!(hasTool("etcd") && hasTool("nginx") && hasTool("skopeo")))("the cluster runbook, with the shipped files, in docs/cluster.md's order", () => {
  let work: string;
  let etcd: RunningEtcd;
  const processes: Supervised[] = [];
  let nginxConf: string;

  beforeAll(async () => {
    work = await tempDir("lain-runbook-");
    for (const dir of NGINX_TEMP_DIRS) await mkdir(join(work, dir));
    etcd = await startEtcd();
  });
  afterAll(async () => {
    if (nginxConf) await new Promise((resolve) => spawn("nginx", ["-c", nginxConf, "-s", "stop"], { stdio: "ignore" }).once("exit", resolve));
    for (const p of processes) await p.stop("SIGKILL");
    await etcd?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** A primary on this machine: cluster-primary.yml as shipped, its host's values from REGISTRY_* variables. */
  async function startPrimary(): Promise<ServerProcess> {
    const port = await freePort();
    const primary = await startLainProcess(PRIMARY, port, {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(work, "store"),
      REGISTRY_HTTP_DEBUG_ADDR: `127.0.0.1:${await freePort()}`,
      REGISTRY_ETCD_ENDPOINTS: etcd.endpoint,
      REGISTRY_CLUSTER_ADVERTISE: `http://127.0.0.1:${port}`,
    });
    processes.push(primary);
    return primary;
  }

  it("first start: a primary registers, upstreams writes the file, nginx starts on it; then an upgrade loses no pull", async () => {
    const upstreamFile = join(work, "registry.upstreams");
    const front = `127.0.0.1:${await freePort()}`;
    nginxConf = join(work, "nginx.conf");
    await writeFile(nginxConf, webrouterConf(await readFile(NGINX, "utf8"), work, front, upstreamFile));
    const servers = async () => (await readFile(upstreamFile, "utf8").catch(() => "")).split("\n").filter((l) => l.trim().startsWith("server "));

    // 1. The primary.
    const first = await startPrimary();
    // 2. The webrouter's upstreams, as docs/cluster.md types it (its reload: this nginx's).
    const upstreams = supervise(
      spawn(process.execPath, cliArgs("upstreams", WEBROUTER, "--out", upstreamFile, "--reload", `nginx -c ${nginxConf} -s reload`), {
        env: { ...process.env, REGISTRY_ETCD_ENDPOINTS: etcd.endpoint },
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    processes.push(upstreams);
    await until(async () => (await servers()).length === 1, "the upstream file with the primary");
    expect((await servers())[0]).toContain(new URL(first.url).host);
    // nginx is not running yet: the reload fails, and says so.
    await until(async () => upstreams.fullOutput().includes("upstreams: the reload command failed"), "the failed reload logged");
    // 3. nginx, on the file upstreams wrote.
    const nginx = supervise(spawn("nginx", ["-c", nginxConf, "-g", "daemon off;"], { stdio: ["ignore", "pipe", "pipe"] }));
    processes.push(nginx);
    await until(async () => (await call("GET", `http://${front}/v2/`).catch(() => undefined))?.status === 200, "nginx serving the registry");

    const image = randomImage({ layers: 2 });
    const source = join(work, "src");
    await writeOciLayout(source, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    await skopeo("copy", `oci:${source}:v1`, `docker://${front}/lain/app:v1`);
    const pulled = async () => sha256(await skopeo("inspect", "--raw", `docker://${front}/lain/app:v1`));
    expect(await pulled()).toBe(image.manifest.digest);

    // The upgrade: the new version starts with the same file, and the old one is stopped.
    const second = await startPrimary();
    await until(async () => (await servers()).length === 2, "the new primary in the upstream file");
    await until(async () => upstreams.fullOutput().includes("upstreams: reloaded"), "the reload logged");
    await first.stop("SIGTERM");
    await until(async () => (await servers()).length === 1, "the old primary out of the upstream file");
    expect((await servers())[0]).toContain(new URL(second.url).host);
    expect(await pulled()).toBe(image.manifest.digest);
    const out = join(work, "out");
    await skopeo("copy", `docker://${front}/lain/app:v1`, `oci:${out}:v1`);
    expect(nginx.child.exitCode).toBeNull();
  }, 120_000);
});
