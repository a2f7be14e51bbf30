import bcrypt from "bcryptjs";
import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signSiblingRequest } from "../../src/auth/sibling-signature.js";
import { rendezvousOwner } from "../../src/proxy/siblings.js";
import { startContainerd, type RunningContainerd } from "../helpers/containerd.js";
import { startDistribution } from "../helpers/distribution.js";
import { download } from "../helpers/download.js";
import { startEtcd, type RunningEtcd } from "../helpers/etcd.js";
import { call, errorCode } from "../helpers/http.js";
import { LimitedLink } from "../helpers/limited-link.js";
import { METRICS_ON_MAIN_PORT, scrape } from "../helpers/metrics.js";
import { indexOf, OCI_LAYER, pushBlob, pushImage, pushManifest, randomImage, sha256, type Blob } from "../helpers/oci.js";
import { freePort, startLainProcess, type ServerProcess } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const available = ["docker-registry", "etcd", "skopeo", "containerd", "ctr"].every(hasTool);
const MiB = 1024 * 1024;
/** The link to the primary: slow enough that a blob takes a while, so faults land mid-blob. */
const LINK_BYTES_PER_SECOND = 48 * MiB;
const SECRET = "fleet-shared-secret";
const REPO = "lain/app";
const USER = { name: "node", password: "node-password" };
const BASIC = { authorization: `Basic ${Buffer.from(`${USER.name}:${USER.password}`).toString("base64")}` };

interface Mirror {
  name: string;
  port: number;
  url: string;
  /** Where the other mirrors reach it: its users' port, or for mirrors 2 and 3 a siblings' listener of their own. */
  advertise: string;
  config: string;
  /** Mirror 0 wants users' credentials: sibling requests must get past it without them. */
  auth: boolean;
  process: ServerProcess | undefined;
}

/**
 * Four lain-registry mirror processes on one etcd, with proxy.siblings on, in front of Debian's
 * docker-registry as the primary behind a bandwidth-limited link of the test's own: every blob
 * crosses the link once however many nodes pull it at once, and faults of the link, of an owner
 * and of the fleet's membership never give a client anything but one clean 200. Mirrors 2 and 3
 * take their siblings on a listener of their own (proxy.siblings.addr), the others on their users'.
 */
describe.skipIf(!available)("fleet: node mirrors fetch each blob from the primary once", () => {
  let work: string;
  let etcd: RunningEtcd;
  let primary: ServerProcess;
  let link: LimitedLink;
  const mirrors: Mirror[] = [];

  beforeAll(async () => {
    work = await tempDir("lain-fleet-");
    etcd = await startEtcd();
    const root = join(work, "primary");
    await mkdir(root);
    primary = await startDistribution({ root, secret: "primary", configDir: work });
    link = await LimitedLink.start(primary.url, LINK_BYTES_PER_SECOND);
    const htpasswd = join(work, "htpasswd");
    await writeFile(htpasswd, `${USER.name}:${bcrypt.hashSync(USER.password, 5)}\n`);
    for (let i = 0; i < 4; i++) {
      const port = await freePort();
      const door = i >= 2 ? await freePort() : undefined;
      const advertise = `http://127.0.0.1:${door ?? port}`;
      const name = `mirror${i}`;
      const config = join(work, `${name}.yml`);
      await writeFile(
        config,
        [
          "version: 0.1",
          "log: {level: info}",
          `storage: {filesystem: {rootdirectory: ${join(work, name)}}}`,
          "http:",
          `  secret: ${SECRET}`,
          METRICS_ON_MAIN_PORT,
          `etcd: {endpoints: [${etcd.endpoint}]}`,
          `cluster: {advertise: "${advertise}", ttl: 2s}`,
          "proxy:",
          `  remoteurl: ${link.url}`,
          "  namespaces: [lain]",
          door === undefined ? "  siblings: {enabled: true}" : `  siblings: {enabled: true, addr: "127.0.0.1:${door}"}`,
          "  timeouts: {connect: 2s, response: 10s, idle: 5s}",
          ...(i === 0 ? ["auth:", `  htpasswd: {realm: fleet, path: ${htpasswd}}`] : []),
          ...(i === 1 ? ["console: {enabled: true}"] : []),
        ].join("\n"),
      );
      mirrors.push({ name, port, url: `http://127.0.0.1:${port}`, advertise, config, auth: i === 0, process: undefined });
    }
    await Promise.all(mirrors.map(start));
    await fleetOf(4);
  });

  afterAll(async () => {
    await Promise.all(mirrors.map((m) => m.process?.stop()));
    await link?.close();
    await primary?.stop();
    await etcd?.stop();
    await rm(work, { recursive: true, force: true });
  });

  async function start(mirror: Mirror): Promise<void> {
    mirror.process = await startLainProcess(mirror.config, mirror.port);
  }

  const live = () => mirrors.filter((m) => m.process?.child.exitCode === null && m.process.child.signalCode === null);

  /** Waits until every live mirror knows `count` live mirrors. */
  async function fleetOf(count: number): Promise<void> {
    for (const mirror of live()) {
      await until(async () => (await scrape(`${mirror.url}/metrics`))("registry_proxy_siblings") === count, `${mirror.name} to know ${count} mirrors`);
    }
  }

  const metric = async (mirror: Mirror, source: string) => (await scrape(`${mirror.url}/metrics`))("registry_proxy_bytes_total", { source });

  /** A fill counts its bytes once it has cached the blob, a moment after its clients are served. */
  async function siblingBytesSince(mirror: Mirror, before: number, expected: number): Promise<number> {
    await until(async () => (await metric(mirror, "sibling")) - before >= expected, `${mirror.name}'s sibling bytes`, 5_000).catch(() => undefined);
    return (await metric(mirror, "sibling")) - before;
  }

  /** Waits for the access log line of a sibling's request for a digest (the log is written after the response). */
  const servedToSibling = (mirror: Mirror, digest: string) =>
    until(() => new RegExp(`"vars\\.digest":"${digest}"[^\\n]*"sibling":true`).test(mirror.process?.fullOutput() ?? ""), `${mirror.name}'s log of a sibling request`, 5_000);

  /** The GETs of a blob (whole or ranges) the primary answered, from its access log. */
  function primaryGets(digest: string): number {
    const line = new RegExp(`"GET /v2/[^ ]+/blobs/${digest} HTTP/1\\.1" 20[06] `, "g");
    return primary.fullOutput().match(line)?.length ?? 0;
  }

  /** What the mirrors logged of a digest besides their access logs: why it crossed the link more than once. */
  function storyOf(digest: string): string {
    const told = mirrors.flatMap((m) => (m.process?.fullOutput() ?? "").split("\n").filter((l) => l.includes(digest) && !l.includes('"response completed"')).map((l) => `${m.name}: ${l}`));
    return `owner ${ownerOf(digest).name}; ${told.join("\n") || "nothing logged"}`;
  }

  function ownerOf(digest: string, among = live()): Mirror {
    const address = rendezvousOwner(digest, among.map((m) => m.advertise));
    return mirrors.find((m) => m.advertise === address) as Mirror;
  }

  async function blobOnPrimary(size: number): Promise<Blob> {
    const content = randomBytes(size);
    const blob = { mediaType: OCI_LAYER, digest: sha256(content), content };
    await pushBlob(primary.url, REPO, blob);
    return blob;
  }

  /** A blob on the primary that `owner` owns among the live mirrors. */
  async function blobOwnedBy(owner: Mirror, size: number): Promise<Blob> {
    for (let i = 0; i < 64; i++) {
      const content = randomBytes(size);
      if (ownerOf(sha256(content)) !== owner) continue;
      const blob = { mediaType: OCI_LAYER, digest: sha256(content), content };
      await pushBlob(primary.url, REPO, blob);
      return blob;
    }
    throw new Error(`no blob owned by ${owner.name} in 64 tries`);
  }

  const pull = (mirror: Mirror, digest: string) => download(`${mirror.url}/v2/${REPO}/blobs/${digest}`, undefined, mirror.auth ? BASIC : {});

  it("four concurrent cold pulls of a blob, one per node: one primary GET, about one blob over the link, the right bytes everywhere", async () => {
    const blob = await blobOnPrimary(24 * MiB);
    const owner = ownerOf(blob.digest);
    const before = await Promise.all(mirrors.map((m) => metric(m, "sibling")));
    const carried = link.carried;

    const outcomes = await Promise.all(mirrors.map((m) => pull(m, blob.digest)));

    for (const outcome of outcomes) expect(outcome).toMatchObject({ status: 200, broken: false, digest: blob.digest });
    expect(primaryGets(blob.digest)).toBe(1);
    // The blob and the HTTP around it: without siblings it would be four blobs.
    expect(link.carried - carried).toBeLessThan(blob.content.length * 1.05);
    const counted = await Promise.all(mirrors.map((m, i) => siblingBytesSince(m, before[i]!, m === owner ? 0 : blob.content.length)));
    expect(counted).toEqual(mirrors.map((m) => (m === owner ? 0 : blob.content.length)));
  });

  it("ranges of a cold blob on two nodes that do not own it: answered at once, and the blob crosses the link once", async () => {
    const owner = mirrors[3] as Mirror;
    const blob = await blobOwnedBy(owner, 8 * MiB);
    const readers = mirrors.filter((m) => m !== owner && !m.auth).slice(0, 2);
    const size = blob.content.length;
    const wanted = [`${size - 4096}-${size - 1}`, `${4 * MiB}-${4 * MiB + 65_535}`];
    const answers = await Promise.all(
      readers.flatMap((m) => wanted.map(async (range) => ({ range, reply: await call("GET", `${m.url}/v2/${REPO}/blobs/${blob.digest}`, { headers: { range: `bytes=${range}` } }) }))),
    );
    for (const { range, reply } of answers) {
      const [start = 0, end = 0] = range.split("-").map(Number);
      expect(reply.status).toBe(206);
      expect(reply.body.equals(blob.content.subarray(start, end + 1))).toBe(true);
    }
    // The readers passed their ranges to the owner, which answered them (from its fill, or the primary).
    const rangesTheOwnerLogged = () =>
      (owner.process?.fullOutput() ?? "").split("\n").filter((line) => line.includes(`"vars.digest":"${blob.digest}"`) && line.includes('"sibling":true') && line.includes('"http.response.status":206')).length;
    await until(() => rangesTheOwnerLogged() >= answers.length, "the owner's log of the ranges it answered", 5_000);
    // Every fill the ranges started (each reader's, and the owner's under them) is over.
    await until(async () => (await Promise.all(mirrors.map(async (m) => (await scrape(`${m.url}/metrics`))("registry_proxy_fetches_in_flight")))).every((n) => n === 0), "the fleet's fills", 30_000);
    // One whole GET at the primary, the owner's: the readers' fills came from it.
    const whole = primary.fullOutput().match(new RegExp(`"GET /v2/[^ ]+/blobs/${blob.digest} HTTP/1\\.1" 200 `, "g"))?.length ?? 0;
    expect(whole, storyOf(blob.digest)).toBe(1);
    for (const m of readers) expect((await pull(m, blob.digest)).digest).toBe(blob.digest);
  });

  it("takes sibling requests only with a valid signature, and then without the users' credentials", async () => {
    const guarded = mirrors[0] as Mirror;
    const blob = await blobOwnedBy(guarded, 64 * 1024);
    const path = `/v2/${REPO}/blobs/${blob.digest}`;
    const get = (headers: Record<string, string>) => call("GET", `${guarded.url}${path}`, { headers });

    const anonymous = await get({});
    expect(anonymous.status).toBe(401);
    for (const signature of ["forged", signSiblingRequest("another-secret", "GET", path), signSiblingRequest(SECRET, "GET", `${path}x`), signSiblingRequest(SECRET, "GET", path, Date.now() - 120_000)]) {
      const refused = await get({ "x-lain-sibling": signature });
      expect(refused.status).toBe(403);
      expect(errorCode(refused)).toBe("DENIED");
    }
    const upload = `/v2/${REPO}/blobs/uploads/`;
    const write = await call("POST", `${guarded.url}${upload}`, { headers: { "x-lain-sibling": signSiblingRequest(SECRET, "POST", upload) } });
    expect(write.status).toBe(403);
    // Only what the fleet mirrors (proxy.namespaces) is a sibling's to read.
    const local = `/v2/local/tool/blobs/${blob.digest}`;
    const unmirrored = await call("GET", `${guarded.url}${local}`, { headers: { "x-lain-sibling": signSiblingRequest(SECRET, "GET", local) } });
    expect(unmirrored.status).toBe(403);
    expect(unmirrored.text).toContain("only read the repositories they mirror");
    // A mirror with a siblings' listener takes them there, and nowhere else; the listener takes nothing else.
    const doored = mirrors[2] as Mirror;
    const atUsers = await call("GET", `${doored.url}${path}`, { headers: { "x-lain-sibling": signSiblingRequest(SECRET, "GET", path) } });
    expect(atUsers.status).toBe(403);
    expect(atUsers.text).toContain("on its siblings' listener (proxy.siblings.addr) only");
    const unsigned = await call("GET", `${doored.advertise}${path}`);
    expect(unsigned.status).toBe(403);
    expect(unsigned.text).toContain("takes only the signed requests of sibling mirrors");

    const signed = await get({ "x-lain-sibling": signSiblingRequest(SECRET, "GET", path) });
    expect(signed.status).toBe(200);
    expect(sha256(signed.body)).toBe(blob.digest);
    // The owner fetched it from the primary itself: a sibling's request is never passed on.
    expect(primaryGets(blob.digest)).toBe(1);
    await servedToSibling(guarded, blob.digest);

    // Through another mirror, as a node pulls: the owner is asked without credentials and serves from its store.
    const other = mirrors[1] as Mirror;
    const before = await metric(other, "sibling");
    expect(await pull(other, blob.digest)).toMatchObject({ status: 200, digest: blob.digest });
    expect(await siblingBytesSince(other, before, blob.content.length)).toBe(blob.content.length);
    expect(primaryGets(blob.digest)).toBe(1);
  });

  it("skopeo and ctr pull a multi-arch image through two mirrors at once: each blob and manifest crosses the link once", async () => {
    const images = ["amd64", "arm64"].map((architecture) => randomImage({ architecture, layers: 2, layerSize: 2 * MiB }));
    for (const image of images) await pushImage(primary.url, "lain/multi", image.manifest.digest, image);
    const index = indexOf(images);
    await pushManifest(primary.url, "lain/multi", "v1", index);
    const containerd: RunningContainerd = await startContainerd(join(work, "containerd"));
    try {
      const [viaSkopeo, viaCtr] = [mirrors[1] as Mirror, mirrors[2] as Mirror];
      const host = "registry.lain.local";
      const hostsDir = await containerd.mirrorHost(host, viaCtr.url);
      await Promise.all([
        skopeo("copy", "--all", `docker://${viaSkopeo.url.slice("http://".length)}/lain/multi:v1`, `oci:${join(work, "skopeo-out")}:v1`),
        containerd.ctr("images", "pull", "--all-platforms", "--snapshotter", "native", "--hosts-dir", hostsDir, `${host}/lain/multi:v1`),
      ]);
      expect(await containerd.ctr("images", "ls")).toContain(index.digest);
    } finally {
      await containerd.stop();
    }
    for (const image of images) {
      for (const item of [image.config, ...image.layers]) expect(primaryGets(item.digest), storyOf(item.digest)).toBe(1);
      const byDigest = new RegExp(`"GET /v2/lain/multi/manifests/${image.manifest.digest} HTTP/1\\.1" 200 `, "g");
      expect(primary.fullOutput().match(byDigest)?.length ?? 0).toBe(1);
    }
  });

  it("an owner that does not answer in time (stopped) is passed over: the asking mirror fetches from the primary itself", async () => {
    const [asking, stuck] = [mirrors[1] as Mirror, mirrors[2] as Mirror];
    const blob = await blobOwnedBy(stuck, 1024 * 1024);
    const before = { sibling: await metric(asking, "sibling"), upstream: await metric(asking, "upstream") };
    stuck.process?.child.kill("SIGSTOP");
    try {
      // Its kernel still accepts the connection; nothing answers it (proxy.siblings.firstbytetimeout: 500ms).
      expect(await pull(asking, blob.digest)).toMatchObject({ status: 200, broken: false, digest: blob.digest });
      expect(primaryGets(blob.digest)).toBe(1);
    } finally {
      stuck.process?.child.kill("SIGCONT");
    }
    await until(async () => (await metric(asking, "upstream")) - before.upstream >= blob.content.length, "the fill's count", 5_000);
    expect(await metric(asking, "sibling")).toBe(before.sibling);
  });

  it("an owner that waits on the primary longer than firstbytetimeout keeps the asking mirror waiting (102 Processing): the blob crosses once", async () => {
    const asking = mirrors[1] as Mirror;
    const blob = await blobOwnedBy(mirrors[2] as Mirror, 1024 * 1024);
    const before = await metric(asking, "sibling");
    // Four times proxy.siblings.firstbytetimeout (500ms) before the primary's answer reaches the owner.
    link.stall(2_000);
    expect(await pull(asking, blob.digest)).toMatchObject({ status: 200, broken: false, digest: blob.digest });
    expect(primaryGets(blob.digest)).toBe(1);
    expect(await siblingBytesSince(asking, before, blob.content.length)).toBe(blob.content.length);
  });

  it("the console's Mirror view lists the siblings and the bytes they gave", async () => {
    const viewer = mirrors[1] as Mirror;
    const overview = await call("GET", `${viewer.url}/ui/api/overview`);
    expect(overview.status).toBe(200);
    const { mirror } = overview.json() as { mirror: { siblings: { self: string; mirrors: string[] }; bytes: { sibling: number; upstream: number } } };
    expect(mirror.siblings).toMatchObject({ self: viewer.advertise, mirrors: mirrors.map((m) => m.advertise).sort() });
    expect(mirror.bytes.sibling).toBe(await metric(viewer, "sibling"));
    expect(mirror.bytes.sibling).toBeGreaterThan(0);
  });

  it("the link cut mid-blob: the owner resumes from the primary and the node's client gets one clean 200", async () => {
    const asking = mirrors[1] as Mirror;
    const blob = await blobOwnedBy(mirrors[2] as Mirror, 32 * MiB);
    const from = link.carried;
    let cut = false;
    link.onCarried = (carried) => {
      if (cut || carried - from < blob.content.length * 0.4) return;
      cut = true;
      link.cut();
    };
    try {
      expect(await pull(asking, blob.digest)).toMatchObject({ status: 200, broken: false, digest: blob.digest });
    } finally {
      link.onCarried = undefined;
    }
    expect(cut).toBe(true);
    // The whole blob once, then its rest.
    expect(primaryGets(blob.digest)).toBe(2);
  });

  it("kill -9 of the owner mid-transfer: the other nodes' clients complete unbroken, and the owner rejoins", async () => {
    const owner = mirrors[3] as Mirror;
    const blob = await blobOwnedBy(owner, 32 * MiB);
    const from = link.carried;
    let killed = false;
    link.onCarried = (carried) => {
      if (killed || carried - from < blob.content.length * 0.4) return;
      killed = true;
      owner.process?.child.kill("SIGKILL");
    };
    const others = mirrors.filter((m) => m !== owner);
    try {
      const outcomes = await Promise.all(others.map((m) => pull(m, blob.digest)));
      for (const outcome of outcomes) expect(outcome).toMatchObject({ status: 200, broken: false, digest: blob.digest });
    } finally {
      link.onCarried = undefined;
    }
    expect(killed).toBe(true);
    // The owner's whole GET, then each node's rest from where its owner stopped.
    expect(primaryGets(blob.digest)).toBeGreaterThanOrEqual(2);
    expect(primaryGets(blob.digest)).toBeLessThanOrEqual(1 + others.length);

    await start(owner);
    await fleetOf(4);
  });

  it("a mirror leaving hands its share to the others, and joining takes it back", async () => {
    const leaving = mirrors[3] as Mirror;
    await leaving.process?.stop("SIGTERM");
    await fleetOf(3);
    const asking = mirrors[1] as Mirror;
    // A blob the leaver owned: its new owner among the three fetches it once.
    let moved: Blob | undefined;
    for (let i = 0; i < 64 && !moved; i++) {
      const candidate = randomBytes(256 * 1024);
      if (ownerOf(sha256(candidate), mirrors) === leaving && ownerOf(sha256(candidate)) !== asking) moved = { mediaType: OCI_LAYER, digest: sha256(candidate), content: candidate };
    }
    if (!moved) throw new Error("no blob the leaver owned in 64 tries");
    await pushBlob(primary.url, REPO, moved);
    const outcomes = await Promise.all([asking, mirrors[0] as Mirror].map((m) => pull(m, moved.digest)));
    for (const outcome of outcomes) expect(outcome).toMatchObject({ status: 200, digest: moved.digest });
    expect(primaryGets(moved.digest)).toBe(1);

    await start(leaving);
    await fleetOf(4);
    const back = await blobOwnedBy(leaving, 256 * 1024);
    const before = await metric(asking, "sibling");
    expect(await pull(asking, back.digest)).toMatchObject({ status: 200, digest: back.digest });
    expect(await siblingBytesSince(asking, before, back.content.length)).toBe(back.content.length);
    await servedToSibling(leaving, back.digest);
    expect(primaryGets(back.digest)).toBe(1);
  });
});
