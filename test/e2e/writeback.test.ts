import bcrypt from "bcryptjs";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderUpstream } from "../../src/cluster/upstream-block.js";
import { CountingProxy } from "../helpers/counting-proxy.js";
import { startDistribution } from "../helpers/distribution.js";
import { HandoverHarness } from "../helpers/handover.js";
import { call, errorCode } from "../helpers/http.js";
import { METRICS_ON_MAIN_PORT, sample } from "../helpers/metrics.js";
import { DOCKER_MANIFEST, OCI_MANIFEST, pushImage, pullsWhole, randomImage, type Image } from "../helpers/oci.js";
import { freePort, runCli, startLainProcess, type ServerProcess } from "../helpers/process.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const CI = { user: "ci", password: "ci-password" };
const BASIC = { authorization: `Basic ${Buffer.from(`${CI.user}:${CI.password}`).toString("base64")}` };

interface Pushed {
  repo: string;
  tag: string;
  image: Image;
}

/**
 * A CI pushing through the webrouter the whole time (bounded in count and time): one new image
 * after another, each acknowledged once its manifest PUT answered 201. A failed push is not
 * acknowledged, and the next one goes on.
 */
function pushLoop(base: string, repo: string) {
  const acknowledged: Pushed[] = [];
  const failures: string[] = [];
  let stopped = false;
  const done = (async () => {
    const deadline = Date.now() + 180_000;
    for (let i = 0; i < 3000 && !stopped && Date.now() < deadline; i++) {
      const pushed = { repo, tag: `build-${i}`, image: randomImage({ layers: 2, layerSize: 40_000 }) };
      try {
        await pushImage(base, repo, pushed.tag, pushed.image, BASIC);
        acknowledged.push(pushed);
      } catch (err) {
        failures.push(String(err));
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  })();
  return {
    acknowledged,
    failures,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

interface WritebackHealth {
  pending: number;
  lastReplay?: { results: Record<string, number>; error?: string };
  error?: string;
}

async function writebackOf(url: string): Promise<WritebackHealth> {
  const health = await call("GET", `${url}/health`);
  return health.json<{ writeback: WritebackHealth }>().writeback;
}

/** Failed pushes by what failed them (status and code), for the test's report. */
function failureKinds(failures: string[]): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const failure of failures) {
    const kind = /(start upload|push blob|push manifest)[^:]*: (\d+)[^"]*(?:"code":"(\w+)")?/.exec(failure);
    const key = kind ? `${kind[1]} ${kind[2]}${kind[3] ? ` ${kind[3]}` : ""}` : failure.slice(0, 60);
    kinds[key] = (kinds[key] ?? 0) + 1;
  }
  return kinds;
}

/** Every acknowledged image, byte for byte, from `base`; the ones that are not. */
async function notPulled(base: string, pushed: Pushed[]): Promise<string[]> {
  const missing: string[] = [];
  for (const { repo, tag, image } of pushed) if (!(await pullsWhole(base, repo, tag, image, BASIC))) missing.push(`${repo}:${tag}`);
  return missing;
}

async function writeHtpasswd(dir: string): Promise<string> {
  const file = join(dir, "htpasswd");
  await writeFile(file, `${CI.user}:${bcrypt.hashSync(CI.password, 5)}\n`);
  return file;
}

/** A standby's proxy section and its auth, as lines of a configuration. */
function standbyLines(remoteurl: string, htpasswd: string, pushes: "writeback" | "refuse", credentials = false): string[] {
  return [
    `auth: {htpasswd: {realm: standby, path: ${htpasswd}}}`,
    "proxy:",
    `  remoteurl: ${remoteurl}`,
    `  pushes: ${pushes}`,
    ...(credentials ? [`  username: ${CI.user}`, `  password: ${CI.password}`] : []),
    "  timeouts: {connect: 1s, response: 5s, idle: 5s}",
  ];
}

describe.skipIf(!(hasTool("etcd") && hasTool("nginx")))("write-back: a standby's pushes reach the lain primary (etcd, nginx, kill -9)", () => {
  let harness: HandoverHarness;
  let htpasswd: string;
  let primaryPort: number;
  const primaryAuth = () => [`auth: {htpasswd: {realm: primary, path: ${htpasswd}}}`];

  beforeAll(async () => {
    harness = await HandoverHarness.start("lain-writeback-");
    htpasswd = await writeHtpasswd(harness.work);
    primaryPort = await freePort();
  });
  afterAll(async () => {
    await harness?.close();
  });

  it("with a client pushing through nginx the whole time: kill -9 of the only primary, pushes go to the standby, the primary returns, every acknowledged image pulls byte for byte", async () => {
    let primary = await harness.startInstance("primary", "primary", { port: primaryPort, extra: primaryAuth() });
    const standby = await harness.startInstance("standby", "mirror", { extra: [...standbyLines(primary.url, htpasswd, "writeback", true), "  ttl: 1s"] });
    harness.startWatcher(harness.config("primary"));
    await until(async () => (await harness.upstreamServers()).length === 2, "the primary and its backup in the upstream file");
    await harness.startNginx();

    const loop = pushLoop(harness.front, "lain/ci");
    try {
      await until(() => loop.acknowledged.length >= 3, "pushes to the primary");
      await primary.stop("SIGKILL");
      const killedAt = loop.acknowledged.length;
      // Read what the standby took from its journal, not from a guess of how long to wait.
      await until(async () => (await writebackOf(standby.url)).pending >= 6, "six pushes journaled by the standby", 30_000);
      const journaled = (await writebackOf(standby.url)).pending;
      const restartedAt = Date.now();
      primary = await harness.startInstance("primary", "primary", { port: primaryPort, extra: primaryAuth() });
      await until(async () => (await writebackOf(standby.url)).pending === 0, "the standby's journal to reach the primary", 60_000);
      const replayMs = Date.now() - restartedAt;
      const afterReplay = loop.acknowledged.length;
      await until(() => loop.acknowledged.length >= afterReplay + 3, "pushes to the primary again", 30_000);
      await loop.stop();
      process.stderr.write(`write-back: ${loop.acknowledged.length} pushes acknowledged (${killedAt} before the kill), ${journaled}+ journaled by the standby, replayed ${replayMs} ms after the primary's restart, ${loop.failures.length} pushes failed ${JSON.stringify(failureKinds(loop.failures))}\n`);

      const metrics = (await call("GET", `${standby.url}/metrics`)).text;
      expect(sample(metrics, "registry_proxy_writeback_replayed_total", { result: "written" })).toBeGreaterThanOrEqual(journaled);
      expect(sample(metrics, "registry_proxy_writeback_entries")).toBe(0);
      // Each image the client was told is pushed, through the registry's name and from the primary itself.
      expect(await notPulled(harness.front, loop.acknowledged)).toEqual([]);
      expect(await notPulled(primary.url, loop.acknowledged)).toEqual([]);
    } finally {
      await loop.stop();
      await standby.stop("SIGTERM");
    }
  }, 240_000);

  it("refuse mode: while the primary is down a push through nginx gets a clean 503 with Retry-After, and nothing is stored", async () => {
    const standby = await harness.startInstance("standby-refuse", "mirror", { extra: standbyLines(`http://127.0.0.1:${primaryPort}`, htpasswd, "refuse") });
    await until(async () => (await harness.upstreamServers()).some((l) => l.includes(standby.host) && l.includes("backup")), "the refusing standby as the backup");
    await until(async () => !(await harness.upstreamServers()).some((l) => l.includes(harness.instances[1]!.host)), "the write-back standby gone");
    const primary = harness.instances.find((i) => i.url.endsWith(`:${primaryPort}`) && i.child.exitCode === null && i.child.signalCode === null)!;
    await primary.stop("SIGKILL");

    // Until the standby has seen the primary go it answers 403 (push to the primary), and while
    // nginx reloads it may answer itself: the standby's own answer is the one looked at.
    let reply: Awaited<ReturnType<typeof call>> | undefined;
    await until(async () => {
      reply = await call("POST", `${harness.front}/v2/lain/refused/blobs/uploads/`, { headers: BASIC });
      return reply.status === 503 && errorCode(reply) === "UNAVAILABLE";
    }, "the standby's 503");
    expect(reply!.headers["retry-after"]).toMatch(/^\d+$/);
    expect(reply!.text).toContain("proxy.pushes: refuse");
    const image = randomImage({ layers: 1 });
    await expect(pushImage(harness.front, "lain/refused", "v1", image, BASIC)).rejects.toThrow();
    expect(await readdir(join(harness.work, "standby-refuse-store")).catch(() => [])).not.toContain("docker");

    // Once the primary is back, the same push goes through and pulls.
    const back = await harness.startInstance("primary", "primary", { port: primaryPort, extra: primaryAuth() });
    await until(async () => (await pushImage(harness.front, "lain/refused", "v1", image, BASIC).then(() => true, () => false)), "the push once the primary is back", 30_000);
    expect(await pullsWhole(back.url, "lain/refused", "v1", image, BASIC)).toBe(true);
  }, 120_000);
});

describe.skipIf(!(hasTool("etcd") && hasTool("nginx") && hasTool("docker-registry")))("write-back to Debian's docker-registry as the primary", () => {
  let harness: HandoverHarness;
  let primary: ServerProcess;
  let standby: ServerProcess;

  beforeAll(async () => {
    harness = await HandoverHarness.start("lain-writeback-distribution-");
  });
  afterAll(async () => {
    await standby?.stop("SIGKILL");
    await primary?.stop("SIGKILL");
    await harness?.close();
  });

  it("kill -9 of docker-registry behind nginx: the standby takes the pushes, and writes them back once it returns", async () => {
    const root = join(harness.work, "distribution-store");
    const port = await freePort();
    const start = () => startDistribution({ root, secret: "s", configDir: harness.work, port });
    primary = await start();
    const htpasswd = await writeHtpasswd(harness.work);
    const standbyPort = await freePort();
    const config = join(harness.work, "standby.yml");
    await writeFile(config, ["version: 0.1", "log: {level: warn}", `storage: {filesystem: {rootdirectory: ${join(harness.work, "standby-store")}}, delete: {enabled: true}}`, ...standbyLines(primary.url, htpasswd, "writeback")].join("\n"));
    standby = await startLainProcess(config, standbyPort);
    const text = renderUpstream("registry", [
      { address: primary.url, role: "primary", version: "2.8", started: new Date().toISOString() },
      { address: standby.url, role: "mirror", version: "ours", started: new Date().toISOString() },
    ]);
    await writeFile(harness.upstreamFile, text ?? "");
    await harness.startNginx();

    const loop = pushLoop(harness.front, "lain/ci");
    try {
      await until(() => loop.acknowledged.length >= 3, "pushes to docker-registry");
      await primary.stop("SIGKILL");
      await until(async () => (await writebackOf(standby.url)).pending >= 3, "pushes journaled by the standby", 30_000);
      primary = await start();
      await until(async () => (await writebackOf(standby.url)).pending === 0, "the standby's journal to reach docker-registry", 60_000);
      const afterReplay = loop.acknowledged.length;
      await until(() => loop.acknowledged.length >= afterReplay + 3, "pushes to docker-registry again", 30_000);
      await loop.stop();
      expect(await notPulled(harness.front, loop.acknowledged)).toEqual([]);
      expect(await notPulled(primary.url, loop.acknowledged)).toEqual([]);
    } finally {
      await loop.stop();
    }
  }, 240_000);
});

describe("write-back: replay after kill -9 of the standby, conflicts, pulls while it waits", () => {
  let work: string;
  let htpasswd: string;
  let primary: TestRegistry;
  const stopping: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    work = await tempDir("lain-writeback-replay-");
    htpasswd = await writeHtpasswd(work);
    primary = await startTestRegistry();
  });
  afterAll(async () => {
    for (const stop of stopping.reverse()) await stop();
    await primary?.close();
  });

  /** A standby process (kill -9 is real) reaching the primary through `link`, with its config file. */
  async function startStandby(name: string, link: CountingProxy, port?: number): Promise<{ standby: ServerProcess; config: string; port: number }> {
    const config = join(work, `${name}.yml`);
    const own = port ?? (await freePort());
    await writeFile(
      config,
      ["version: 0.1", "log: {level: warn}", `storage: {filesystem: {rootdirectory: ${join(work, name)}}, delete: {enabled: true}}`, "http:", METRICS_ON_MAIN_PORT, ...standbyLines(link.url, htpasswd, "writeback")].join("\n"),
    );
    const standby = await startLainProcess(config, own);
    stopping.push(() => standby.stop("SIGKILL"));
    return { standby, config, port: own };
  }

  async function linkTo(): Promise<CountingProxy> {
    const link = await CountingProxy.start(primary.url);
    stopping.push(() => link.close());
    return link;
  }

  /** Cuts the link, and waits until the standby takes writes (its answer whether the peer is up is a second old at most). */
  async function cut(link: CountingProxy, standby: ServerProcess, repo: string): Promise<void> {
    link.down = true;
    await until(async () => (await call("POST", `${standby.url}/v2/${repo}/blobs/uploads/`, { headers: BASIC })).status === 202, "the standby to see its peer down");
  }

  const tagOf = async (base: string, repo: string, tag: string, auth: Record<string, string> = {}) =>
    (await call("HEAD", `${base}/v2/${repo}/manifests/${tag}`, { headers: { ...auth, accept: `${OCI_MANIFEST}, ${DOCKER_MANIFEST}` } })).headers["docker-content-digest"];

  it("kill -9 of the standby mid-replay, then a restart: the replay completes in push order, each write made once", async () => {
    const link = await linkTo();
    const { standby, config, port } = await startStandby("standby-killed", link);
    await cut(link, standby, "lain/batch");
    const images = Array.from({ length: 8 }, () => randomImage({ layers: 2, layerSize: 100_000 }));
    for (const [i, image] of images.entries()) await pushImage(standby.url, "lain/batch", `t${i}`, image, BASIC);
    // t3 again: the later push must be the one the primary ends with.
    const again = randomImage({ layers: 1, layerSize: 100_000 });
    await pushImage(standby.url, "lain/batch", "t3", again, BASIC);
    expect((await writebackOf(standby.url)).pending).toBe(9);

    const tagPuts = () => link.seen.filter((s) => s.method === "PUT" && /\/manifests\/t\d$/.test(s.path));
    link.onAnswer = (seen) => {
      if (seen.method === "PUT" && /\/manifests\/t\d$/.test(seen.path) && tagPuts().length === 2) void standby.stop("SIGKILL");
    };
    link.down = false;
    await until(() => standby.child.signalCode === "SIGKILL", "the standby killed mid-replay", 30_000);
    link.onAnswer = undefined;
    const tagsAtKill = (await call("GET", `${primary.url}/v2/lain/batch/tags/list`)).json<{ tags: string[] }>().tags;
    expect(tagsAtKill.sort()).toEqual(["t0", "t1"]);

    const restarted = await startLainProcess(config, port);
    stopping.push(() => restarted.stop("SIGKILL"));
    await until(async () => (await writebackOf(restarted.url)).pending === 0, "the replay to complete after the restart", 60_000);

    const expected = images.map((image, i) => ({ repo: "lain/batch", tag: `t${i}`, image: i === 3 ? again : image }));
    expect(await notPulled(primary.url, expected)).toEqual([]);
    const tags = (await call("GET", `${primary.url}/v2/lain/batch/tags/list`)).json<{ tags: string[] }>().tags;
    expect(tags.sort()).toEqual(expected.map((e) => e.tag).sort());
    // Each tag written once (t3 twice: two pushes), each blob uploaded once.
    const putsPerTag = Object.fromEntries(expected.map(({ tag }) => [tag, tagPuts().filter((s) => s.path.endsWith(`/${tag}`)).length]));
    expect(putsPerTag).toEqual({ t0: 1, t1: 1, t2: 1, t3: 2, t4: 1, t5: 1, t6: 1, t7: 1 });
    const uploads = link.seen.filter((s) => s.method === "PUT" && s.status === 201 && s.path.includes("/blobs/uploads/")).map((s) => new URL(s.path, "http://x").searchParams.get("digest"));
    expect(uploads.length).toBe(new Set(uploads).size);
    expect(new Set(uploads)).toEqual(new Set([...images, again].flatMap((image) => [image.config, ...image.layers]).map((b) => b.digest)));
    const shown = await runCli("mirror", "writeback", config);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("journal: 0 entries");
    expect(shown.stdout).not.toContain("decided against");
  }, 120_000);

  it("a tag the primary gained meanwhile stays the primary's, and is reported; pulls answer the journaled tag until the replay", async () => {
    const link = await linkTo();
    const { standby, config } = await startStandby("standby-conflict", link);
    const [a1, a3, x1, y2, x3, z1, w2] = Array.from({ length: 7 }, () => randomImage({ layers: 1 }));
    await pushImage(primary.url, "lain/app", "v1", a1!);
    await pushImage(primary.url, "lain/app", "v3", a3!);
    // The standby has seen v1 and v3 as the primary had them.
    for (const tag of ["v1", "v3"]) expect(await tagOf(standby.url, "lain/app", tag, BASIC)).toBeDefined();

    await cut(link, standby, "lain/app");
    await pushImage(standby.url, "lain/app", "v1", x1!, BASIC);
    await pushImage(standby.url, "lain/app", "v2", y2!, BASIC);
    await pushImage(standby.url, "lain/app", "v3", x3!, BASIC);
    // The primary answers again but takes no writes yet; meanwhile it gains v1 and v2 of its own.
    link.down = false;
    link.writesFail = true;
    await pushImage(primary.url, "lain/app", "v1", z1!);
    await pushImage(primary.url, "lain/app", "v2", w2!);
    await until(() => link.seen.some((s) => s.status === 503), "a write-back the primary refused");
    // What the standby took is its answer until the replay, not the primary's value.
    expect(await tagOf(standby.url, "lain/app", "v1", BASIC)).toBe(x1!.manifest.digest);
    expect(await tagOf(standby.url, "lain/app", "v2", BASIC)).toBe(y2!.manifest.digest);
    const waiting = await call("GET", `${standby.url}/health`);
    expect(waiting.json<{ status: string; writeback: WritebackHealth }>()).toMatchObject({ status: "degraded", writeback: { pending: 3, error: expect.stringContaining("503") } });
    expect(sample((await call("GET", `${standby.url}/metrics`)).text, "registry_proxy_writeback_entries")).toBe(3);
    expect(sample((await call("GET", `${standby.url}/metrics`)).text, "registry_proxy_writeback_oldest_seconds")).toBeGreaterThan(0);

    link.writesFail = false;
    await until(async () => (await writebackOf(standby.url)).pending === 0, "the replay");
    // v1 and v2 moved on the primary since: its values stay; v3 had not: the standby's push wins.
    expect(await tagOf(primary.url, "lain/app", "v1")).toBe(z1!.manifest.digest);
    expect(await tagOf(primary.url, "lain/app", "v2")).toBe(w2!.manifest.digest);
    expect(await tagOf(primary.url, "lain/app", "v3")).toBe(x3!.manifest.digest);
    // The pushes that lost their tag are on the primary by digest: nothing acknowledged is gone.
    for (const image of [x1!, y2!]) expect(await pullsWhole(primary.url, "lain/app", image.manifest.digest, image)).toBe(true);
    const metrics = (await call("GET", `${standby.url}/metrics`)).text;
    expect(sample(metrics, "registry_proxy_writeback_replayed_total", { result: "conflict" })).toBe(2);
    expect(sample(metrics, "registry_proxy_writeback_replayed_total", { result: "written" })).toBe(1);
    const shown = await runCli("mirror", "writeback", config);
    expect(shown.stdout).toContain("decided against: 2");
    expect(shown.stdout).toContain(`conflict: push lain/app:v1 ${x1!.manifest.digest}`);
    expect(shown.stdout).toContain(`the upstream had ${z1!.manifest.digest}`);
    // And the standby serves what the primary says.
    expect(await tagOf(standby.url, "lain/app", "v1", BASIC)).toBe(z1!.manifest.digest);
    expect(await tagOf(standby.url, "lain/app", "v3", BASIC)).toBe(x3!.manifest.digest);
  }, 120_000);
});
