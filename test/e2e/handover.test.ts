import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HandoverHarness } from "../helpers/handover.js";
import { call } from "../helpers/http.js";
import { pushImage, randomImage, type Image } from "../helpers/oci.js";
import { holdsBlobs } from "../helpers/store.js";
import { until } from "../helpers/until.js";
import { hasTool } from "../helpers/tools.js";

const available = hasTool("etcd") && hasTool("nginx");
const PREFIX = "/lain/registry/instances";

interface PullStats {
  pulls: number;
  failures: Array<{ at: number; what: string }>;
  wrongBytes: number;
  /** Requests sent again after a reused connection was closed under them (nginx reloading). */
  resent: number;
}

/**
 * A GET as Docker's and containerd's Go clients make it: a request on a reused keep-alive
 * connection that the server closed before answering is sent again once (Go's http.Transport
 * does this for idempotent requests). That is the only retry.
 */
async function get(url: string, stats: PullStats, headers: Record<string, string> = {}) {
  try {
    return await call("GET", url, { headers });
  } catch (err) {
    if (!/other side closed|ECONNRESET/.test(String(err))) throw err;
    stats.resent++;
    return call("GET", url, { headers });
  }
}

/** Pulls images through nginx in a loop (bounded in count and time) until told to stop. */
function pullLoop(base: string, images: Array<{ repo: string; image: Image }>) {
  const stats: PullStats = { pulls: 0, failures: [], wrongBytes: 0, resent: 0 };
  let stopped = false;
  const done = (async () => {
    const deadline = Date.now() + 120_000;
    for (let i = 0; i < 20_000 && !stopped && Date.now() < deadline; i++) {
      const { repo, image } = images[i % images.length]!;
      try {
        const manifest = await get(`${base}/v2/${repo}/manifests/latest`, stats, { accept: image.manifest.mediaType });
        if (manifest.status !== 200) throw new Error(`manifest ${manifest.status}`);
        if (!manifest.body.equals(image.manifest.content)) stats.wrongBytes++;
        for (const blob of [image.config, ...image.layers]) {
          const reply = await get(`${base}/v2/${repo}/blobs/${blob.digest}`, stats);
          if (reply.status !== 200) throw new Error(`blob ${reply.status}`);
          if (`sha256:${createHash("sha256").update(reply.body).digest("hex")}` !== blob.digest) stats.wrongBytes++;
        }
        stats.pulls++;
      } catch (err) {
        stats.failures.push({ at: Date.now(), what: String(err) });
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  })();
  return {
    stats,
    stop: async () => {
      stopped = true;
      await done;
      return stats;
    },
  };
}

describe.skipIf(!available)("handover: etcd registrations, nginx upstream file, drain", () => {
  let harness: HandoverHarness;
  let front: string;
  const instances = () => harness.instances;
  const images: Array<{ repo: string; image: Image }> = [
    { repo: "lain/registry", image: randomImage({ layers: 2, layerSize: 200_000 }) },
    { repo: "lain/app", image: randomImage({ layers: 1, layerSize: 50_000 }) },
  ];
  const startInstance = (name: string, role: "primary" | "mirror", extra: string[] = []) => harness.startInstance(name, role, { extra });
  const upstreamServers = () => harness.upstreamServers();

  beforeAll(async () => {
    harness = await HandoverHarness.start("lain-handover-");
    front = harness.front;
  });
  afterAll(async () => {
    await harness?.close();
  });

  it("registers each instance with address, role and version on a lease", async () => {
    const primary = await startInstance("primary-a", "primary");
    for (const { repo, image } of images) await pushImage(primary.url, repo, "latest", image);
    const client = new Etcd3({ hosts: harness.etcd.endpoint });
    try {
      await until(async () => (await client.getAll().prefix(`${PREFIX}/`).keys()).length === 1, "the registration");
      const [value] = Object.values(await client.getAll().prefix(`${PREFIX}/`).json());
      expect(value).toMatchObject({ address: primary.url, role: "primary", version: expect.any(String) });
      const health = await call("GET", `${primary.url}/health`);
      expect(health.json()).toMatchObject({ status: "ok", storage: { reachable: true }, cluster: { registered: true, role: "primary" } });
    } finally {
      client.close();
    }
  });

  it("writes the nginx upstream file from etcd (mirrors as backup) and nginx serves through it", async () => {
    await startInstance("mirror", "mirror", [
      "proxy:",
      `  remoteurl: ${instances()[0]!.url}`,
      `  prefetch: [${images.map((i) => `${i.repo}:latest`).join(", ")}]`,
    ]);
    harness.startWatcher(harness.config("primary-a"));
    await until(async () => (await upstreamServers()).length === 2, "two servers in the upstream file");
    const servers = await upstreamServers();
    expect(servers.filter((l) => l.includes("backup"))).toHaveLength(1);
    expect(servers.find((l) => !l.includes("backup"))).toContain(new URL(instances()[0]!.url).host);
    await harness.startNginx();
    // The snippet hands nginx's $request_id (32 hex digits) on; the registry keeps and returns it.
    expect((await call("GET", `${front}/v2/`)).headers["x-request-id"]).toMatch(/^[0-9a-f]{32}$/);
    const loop = pullLoop(front, images);
    await until(async () => loop.stats.pulls >= 3, "pulls through nginx");
    expect(await loop.stop()).toMatchObject({ failures: [], wrongBytes: 0 });
    // The mirror holds every prefetched blob: it can serve them without the primary.
    const mirrorRoot = join(harness.work, "mirror-store");
    await until(() => holdsBlobs(mirrorRoot, images.flatMap(({ image }) => [image.config, ...image.layers]).map((b) => b.digest)), "the mirror's prefetch");
    expect((await readFile(harness.reloads, "utf8")).trim().split("\n").length).toBeGreaterThanOrEqual(1);
  });

  it("scenario 1, upgrade: start the new primary, SIGTERM the old one: no pull fails", async () => {
    const loop = pullLoop(front, images);
    await until(async () => loop.stats.pulls >= 3, "pulls before the upgrade");
    const next = await startInstance("primary-b", "primary");
    await until(async () => (await upstreamServers()).some((l) => l.includes(new URL(next.url).host)), "the new primary in the upstream file");
    const old = instances()[0]!;
    // An upload running on the old primary when it is told to stop.
    const content = randomBytes(512 * 1024);
    const digest = `sha256:${createHash("sha256").update(content).digest("hex")}`;
    const session = await call("POST", `${old.url}/v2/lain/app/blobs/uploads/`);
    expect(session.status).toBe(202);
    const upload = new URL(session.headers.location!, old.url);
    expect((await call("PATCH", upload.toString(), { body: content.subarray(0, 256 * 1024) })).status).toBe(202);
    const stopping = old.stop("SIGTERM");
    // While it drains, the old primary says so and refuses new upload sessions, retryably.
    await until(async () => (await call("GET", `${old.url}/health`)).status === 503, "the old primary draining", 5000);
    const refused = await call("POST", `${old.url}/v2/lain/app/blobs/uploads/`);
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("1");
    const rest = await call("PATCH", upload.toString(), { body: content.subarray(256 * 1024) });
    const done = new URL(rest.headers.location!, old.url);
    done.searchParams.set("digest", digest);
    expect((await call("PUT", done.toString())).status).toBe(201);
    await stopping;
    // The finished upload is in the shared store: the new primary serves it.
    expect((await call("HEAD", `${front}/v2/lain/app/blobs/${digest}`)).status).toBe(200);
    expect(old.child.exitCode).toBe(0);
    await until(async () => !(await upstreamServers()).some((l) => l.includes(new URL(old.url).host)), "the old primary gone from the file");
    const pullsAfter = loop.stats.pulls;
    await until(async () => loop.stats.pulls >= pullsAfter + 3, "pulls after the upgrade");
    const stats = await loop.stop();
    expect(stats.wrongBytes).toBe(0);
    expect(stats.failures).toEqual([]);
  });

  it("scenario 2, crash: kill -9 the primary, the mirror (backup) serves, a new primary takes over", async () => {
    const loop = pullLoop(front, images);
    await until(async () => loop.stats.pulls >= 3, "pulls before the crash");
    const crashed = instances()[instances().length - 1]!;
    const killedAt = Date.now();
    await crashed.stop("SIGKILL");
    await until(async () => !(await upstreamServers()).some((l) => l.includes(new URL(crashed.url).host)), "the lease to expire", 15_000);
    const replacement = await startInstance("primary-c", "primary");
    await until(async () => (await upstreamServers()).some((l) => l.includes(new URL(replacement.url).host)), "the replacement in the file");
    const pullsAfter = loop.stats.pulls;
    await until(async () => loop.stats.pulls >= pullsAfter + 3, "pulls after the replacement");
    const stats = await loop.stop();
    const window = stats.failures.length > 0 ? stats.failures[stats.failures.length - 1]!.at - killedAt : 0;
    process.stderr.write(`handover scenario 2: ${stats.pulls} pulls, ${stats.failures.length} failed, failure window ${window} ms, ${stats.resent} resent ${JSON.stringify(stats.failures)}\n`);
    expect(stats.wrongBytes).toBe(0);
  });

  it("scenario 3: etcd restarted mid-way: the upstream file is never emptied, registrations come back", async () => {
    const loop = pullLoop(front, images);
    await until(async () => loop.stats.pulls >= 3, "pulls before the etcd restart");
    const before = await upstreamServers();
    const reloadsBefore = await readFile(harness.reloads, "utf8");
    const logged = harness.watcherLog().length;
    await harness.etcd.kill();
    // Read once the command has seen etcd go (and kept the file), not after a guess of how long that takes.
    await until(() => harness.watcherLog().slice(logged).includes("keeping the last upstream file"), "the upstreams command to notice etcd is gone");
    expect(await upstreamServers()).toEqual(before);
    await harness.etcd.restart();
    const client = new Etcd3({ hosts: harness.etcd.endpoint });
    try {
      await until(async () => (await client.getAll().prefix(`${PREFIX}/`).keys()).length === 2, "both registrations back", 20_000);
    } finally {
      client.close();
    }
    expect(await upstreamServers()).toEqual(before);
    // Same instances, same file: nginx was not reloaded for nothing.
    expect(await readFile(harness.reloads, "utf8")).toBe(reloadsBefore);
    const stats = await loop.stop();
    expect(stats.wrongBytes).toBe(0);
    expect(stats.failures).toEqual([]);
  });
});
