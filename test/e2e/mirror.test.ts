import bcrypt from "bcryptjs";
import { randomBytes } from "node:crypto";
import { readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CountingProxy } from "../helpers/counting-proxy.js";
import { startDistribution } from "../helpers/distribution.js";
import { download } from "../helpers/download.js";
import { call, errorCode } from "../helpers/http.js";
import { METRICS_ON_MAIN_PORT, sample, scrape } from "../helpers/metrics.js";
import { artifactFor, indexOf, pushBlob, pushImage, pushManifest, randomImage, sha256, writeOciLayout, type Image } from "../helpers/oci.js";
import type { ServerProcess } from "../helpers/process.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { blobFile, storedBlobs } from "../helpers/store.js";
import { mountTmpfs, unmount } from "../helpers/tmpfs.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const available = hasTool("skopeo") && hasTool("docker-registry");
const MiB = 1024 * 1024;
const CI = { user: "ci", password: "ci-password" };
const BASIC = { authorization: `Basic ${Buffer.from(`${CI.user}:${CI.password}`).toString("base64")}` };

function mirrorYaml(remoteurl: string, extra = ""): string {
  return ["proxy:", `  remoteurl: ${remoteurl}`, "  ttl: 1h", "  timeouts: {connect: 2s, response: 10s, idle: 5s}", extra].join("\n");
}

async function expectSameImage(layout: string, image: Image): Promise<void> {
  for (const item of [image.manifest, image.config, ...image.layers]) {
    const file = join(layout, "blobs", "sha256", item.digest.slice("sha256:".length));
    expect((await readFile(file)).equals(item.content)).toBe(true);
  }
}

async function uploadsLeft(root: string, repo: string): Promise<string[]> {
  return readdir(join(root, "docker/registry/v2/repositories", repo, "_uploads")).catch(() => []);
}

describe.skipIf(!available)("mirror: pulling through from Debian's docker-registry", () => {
  let work: string;
  let peerRoot: string;
  let peer: ServerProcess;
  let proxy: CountingProxy;
  let mirror: TestRegistry;
  /** The same mirror as a standby: it takes its users' pushes while the peer is down (proxy.pushes: writeback, htpasswd). */
  let standby: TestRegistry;
  /** The standby's own way to the peer, which a test may cut. */
  let standbyLink: CountingProxy;

  async function startPeer(): Promise<void> {
    peer = await startDistribution({ root: peerRoot, secret: "peer-secret", configDir: work });
    proxy.target = peer.url;
    standbyLink.target = peer.url;
  }

  /** Pushes an image to the standby while its link to the peer is cut, and waits for its write-back once the link is back. */
  async function pushToStandbyWhilePeerDown(repo: string, tag: string, image: Image): Promise<void> {
    standbyLink.down = true;
    try {
      // Its answer whether the peer is up is reused for a second.
      await until(async () => (await call("POST", `${standby.url}/v2/${repo}/blobs/uploads/`, { headers: BASIC })).status === 202, "the standby to see its peer down");
      await pushImage(standby.url, repo, tag, image, BASIC);
    } finally {
      standbyLink.down = false;
    }
    const accept = { accept: image.manifest.mediaType };
    await until(async () => (await call("HEAD", `${peer.url}/v2/${repo}/manifests/${tag}`, { headers: accept })).headers["docker-content-digest"] === image.manifest.digest, `the write-back of ${repo}:${tag}`);
  }

  beforeAll(async () => {
    work = await tempDir("lain-mirror-");
    peerRoot = await tempDir("lain-mirror-peer-");
    peer = await startDistribution({ root: peerRoot, secret: "peer-secret", configDir: work });
    proxy = await CountingProxy.start(peer.url);
    standbyLink = await CountingProxy.start(peer.url);
    mirror = await startTestRegistry({ extraYaml: `${METRICS_ON_MAIN_PORT}\n${mirrorYaml(proxy.url)}` });
    const htpasswd = join(work, "htpasswd");
    await writeFile(htpasswd, `${CI.user}:${bcrypt.hashSync(CI.password, 5)}\n`);
    standby = await startTestRegistry({ extraYaml: `${mirrorYaml(standbyLink.url, "  pushes: writeback")}\nauth: {htpasswd: {realm: standby, path: ${htpasswd}}}` });
  });
  afterAll(async () => {
    await mirror?.close();
    await standby?.close();
    await proxy?.close();
    await standbyLink?.close();
    await peer?.stop();
    await rm(work, { recursive: true, force: true });
    await rm(peerRoot, { recursive: true, force: true });
  });
  afterEach(() => {
    proxy.tamper = {};
  });

  it("pulls a single-platform image with skopeo, then serves it again without asking the peer for blobs", async () => {
    const image = randomImage({ layers: 3, layerSize: 300_000 });
    await pushImage(peer.url, "lain/single", "v1", image);

    const metrics = () => scrape(`${mirror.url}/metrics`);
    const before = await metrics();
    const out = join(work, "single-1");
    await skopeo("copy", `docker://${mirror.host}/lain/single:v1`, `oci:${out}:v1`);
    await expectSameImage(out, image);
    const blobGets = () => proxy.count("GET", /^\/v2\/lain\/single\/blobs\//);
    expect(blobGets()).toBe(4);
    const blobBytes = [image.config, ...image.layers].reduce((n, b) => n + b.content.length, 0);
    const delta = (now: Awaited<ReturnType<typeof metrics>>, then: typeof now, name: string, labels: Record<string, string>) => now(name, labels) - then(name, labels);
    // A fill counts its bytes once it has stored the blob, a moment after its client has it.
    await until(async () => delta(await metrics(), before, "registry_proxy_bytes_total", { source: "upstream" }) >= blobBytes, "the fills' byte counts", 5_000).catch(() => undefined);
    const cold = await metrics();
    expect(delta(cold, before, "registry_proxy_requests_total", { kind: "blob", result: "miss" })).toBe(4);
    expect(delta(cold, before, "registry_proxy_requests_total", { kind: "manifest", result: "miss" })).toBe(1);
    expect(delta(cold, before, "registry_proxy_bytes_total", { source: "upstream" })).toBe(blobBytes);

    await skopeo("copy", `docker://${mirror.host}/lain/single:v1`, `oci:${join(work, "single-2")}:v1`);
    await expectSameImage(join(work, "single-2"), image);
    expect(blobGets()).toBe(4);
    // The metrics say the same: all four blobs from the cache, the tag fresh within ttl.
    const warm = await metrics();
    expect(delta(warm, cold, "registry_proxy_requests_total", { kind: "blob", result: "hit" })).toBe(4);
    expect(delta(warm, cold, "registry_proxy_requests_total", { kind: "blob", result: "miss" })).toBe(0);
    expect(delta(warm, cold, "registry_proxy_requests_total", { kind: "manifest", result: "hit" })).toBeGreaterThanOrEqual(1);
    expect(delta(warm, cold, "registry_proxy_bytes_total", { source: "cache" })).toBe(blobBytes);
    expect(await storedBlobs(mirror.root!)).toEqual(expect.arrayContaining([image.config.digest, ...image.layers.map((l) => l.digest)]));
  });

  it("pulls a multi-arch index with --all, and gives a client that cannot take an index its linux/amd64 image", async () => {
    const images = ["amd64", "arm64"].map((architecture) => randomImage({ architecture, layers: 1 }));
    const index = indexOf(images);
    for (const image of images) await pushImage(peer.url, "lain/multi", image.manifest.digest, image);
    await pushManifest(peer.url, "lain/multi", "v1", index);

    expect(sha256(await skopeo("inspect", "--raw", `docker://${mirror.host}/lain/multi:v1`))).toBe(index.digest);
    const out = join(work, "multi");
    await skopeo("copy", "--all", `docker://${mirror.host}/lain/multi:v1`, `oci:${out}:v1`);
    for (const image of images) await expectSameImage(out, image);
    // A client that cannot take an index gets, by tag, the linux/amd64 image (fetched on demand).
    const amd = await call("GET", `${mirror.url}/v2/lain/multi/manifests/v1`, { headers: { accept: images[0]!.manifest.mediaType } });
    expect(amd.headers["docker-content-digest"]).toBe(images[0]!.manifest.digest);
  });

  it("pulls an OCI artifact by digest", async () => {
    const image = randomImage({ layers: 1 });
    await pushImage(peer.url, "lain/art", "v1", image);
    const sbom = artifactFor(image.manifest, "application/spdx+json");
    await pushImage(peer.url, "lain/art", sbom.manifest.digest, sbom);

    const raw = await skopeo("inspect", "--raw", `docker://${mirror.host}/lain/art@${sbom.manifest.digest}`);
    expect(sha256(raw)).toBe(sbom.manifest.digest);
    const layer = await download(`${mirror.url}/v2/lain/art/blobs/${sbom.layers[0]!.digest}`);
    expect(layer.digest).toBe(sbom.layers[0]!.digest);
    // Cached with its subject indexed: the referrers API finds it although distribution 2.8 has none.
    const referrers = await call("GET", `${mirror.url}/v2/lain/art/referrers/${image.manifest.digest}`);
    expect(referrers.json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest)).toEqual([sbom.manifest.digest]);
  });

  it("makes exactly one upstream GET for 8 concurrent cold pulls of one 64 MiB blob, late joiners included", async () => {
    const big = { mediaType: "application/octet-stream", content: randomBytes(64 * MiB), digest: "" };
    big.digest = sha256(big.content);
    await pushBlob(peer.url, "lain/big", big);
    const url = `${mirror.url}/v2/lain/big/blobs/${big.digest}`;
    // A slow peer, so the late joiners arrive while the first pull is mid-blob.
    proxy.tamper = { delayMs: 1 };
    let lateJoiners: Promise<Awaited<ReturnType<typeof download>>[]> | undefined;
    const joined = new Promise<void>((resolve) => {
      proxy.tamper.onBytes = (count) => {
        if (count < 8 * MiB || lateJoiners) return;
        lateJoiners = Promise.all(Array.from({ length: 7 }, () => download(url)));
        resolve();
      };
    });
    const before = await scrape(`${mirror.url}/metrics`);
    const first = download(url);
    await joined;
    const results = [await first, ...(await lateJoiners!)];
    for (const result of results) {
      expect(result).toMatchObject({ status: 200, length: 64 * MiB, digest: big.digest });
    }
    expect(proxy.count("GET", new RegExp(`/blobs/${big.digest}`))).toBe(1);
    const after = await scrape(`${mirror.url}/metrics`);
    const blob = (result: string) => after("registry_proxy_requests_total", { kind: "blob", result }) - before("registry_proxy_requests_total", { kind: "blob", result });
    expect([blob("miss"), blob("coalesced")]).toEqual([1, 7]);
    // The fill ends once the store has its copy, a moment after the last client's byte.
    let inFlight = after("registry_proxy_fetches_in_flight");
    for (let i = 0; i < 100 && inFlight !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      inFlight = (await scrape(`${mirror.url}/metrics`))("registry_proxy_fetches_in_flight");
    }
    expect(inFlight).toBe(0);
  });

  it("writes each fetched byte to disk once: the fill spools into the store's upload, which a rename makes the blob", async () => {
    const blob = { mediaType: "application/octet-stream", content: randomBytes(32 * MiB), digest: "" };
    blob.digest = sha256(blob.content);
    await pushBlob(peer.url, "lain/once", blob);
    const uploads = join(mirror.root!, "docker/registry/v2/repositories/lain/once/_uploads");
    const uploadData = async () => Promise.all((await readdir(uploads)).map((id) => stat(join(uploads, id, "data"))));
    proxy.tamper = { delayMs: 1 };
    let midway: ReturnType<typeof uploadData> | undefined;
    proxy.tamper.onBytes = (count) => {
      if (count >= 16 * MiB) midway ??= uploadData();
    };
    expect(await download(`${mirror.url}/v2/lain/once/blobs/${blob.digest}`)).toMatchObject({ status: 200, length: 32 * MiB, digest: blob.digest });
    // Mid-transfer the upload already holds what arrived (a copy would start only afterwards)...
    const during = await midway!;
    expect(during).toHaveLength(1);
    expect(during[0]!.size).toBeGreaterThan(0);
    // ...and that very file became the blob.
    await expect.poll(() => storedBlobs(mirror.root!), { timeout: 10_000 }).toContain(blob.digest);
    expect((await stat(blobFile(mirror.root!, blob.digest))).ino).toBe(during[0]!.ino);
    // The session's leftover directory goes in the background, after the blob is in place.
    await expect.poll(() => uploadsLeft(mirror.root!, "lain/once"), { timeout: 10_000 }).toEqual([]);
  });

  it("links a blob it already holds for another repository after one HEAD, instead of fetching it again", async () => {
    const content = randomBytes(MiB);
    const digest = sha256(content);
    for (const repo of ["lain/first", "lain/second"]) await pushBlob(peer.url, repo, { mediaType: "application/octet-stream", content, digest });
    expect((await download(`${mirror.url}/v2/lain/first/blobs/${digest}`)).digest).toBe(digest);
    await expect.poll(async () => (await storedBlobs(mirror.root!)).includes(digest)).toBe(true);
    expect((await download(`${mirror.url}/v2/lain/second/blobs/${digest}`)).digest).toBe(digest);
    expect(proxy.count("GET", new RegExp(`/blobs/${digest}`))).toBe(1);
    expect(proxy.count("HEAD", new RegExp(`/lain/second/blobs/${digest}`))).toBe(1);
    // A repository the peer does not have the blob in gets nothing from the other's copy.
    expect((await call("GET", `${mirror.url}/v2/lain/third/blobs/${digest}`)).status).toBe(404);
  });

  it("serves a range of a blob while it is being filled", async () => {
    const content = randomBytes(16 * MiB);
    const digest = sha256(content);
    await pushBlob(peer.url, "lain/range", { mediaType: "application/octet-stream", content, digest });
    let passed = 0;
    proxy.tamper = { delayMs: 2, onBytes: (count) => (passed = count) };
    const url = `${mirror.url}/v2/lain/range/blobs/${digest}`;
    const whole = download(url);
    // Once the range's bytes are in the fill, it is served from there; before, it would be passed through.
    await until(() => passed > 64 * 1024, "the fill to pass the range's bytes");
    const part = await call("GET", url, { headers: { range: "bytes=1000-2999" } });
    expect(part.status).toBe(206);
    expect(part.headers["content-range"]).toBe(`bytes 1000-2999/${content.length}`);
    expect(part.body.equals(content.subarray(1000, 3000))).toBe(true);
    expect((await whole).digest).toBe(digest);
    expect(proxy.count("GET", new RegExp(`/blobs/${digest}`))).toBe(1);
  });

  it("answers a HEAD for an uncached blob with one upstream HEAD and no GET", async () => {
    const content = randomBytes(100_000);
    const digest = sha256(content);
    await pushBlob(peer.url, "lain/head", { mediaType: "application/octet-stream", content, digest });
    const head = await call("HEAD", `${mirror.url}/v2/lain/head/blobs/${digest}`);
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(content.length));
    expect(proxy.count("GET", new RegExp(`/blobs/${digest}`))).toBe(0);
    expect(proxy.count("HEAD", new RegExp(`/blobs/${digest}`))).toBe(1);
  });

  it("breaks the transfer when the peer dies mid-blob and stays down through the fill's resumes, caches nothing, and fetches again once the peer is back", async () => {
    const content = randomBytes(32 * MiB);
    const digest = sha256(content);
    await pushBlob(peer.url, "lain/dies", { mediaType: "application/octet-stream", content, digest });
    const dying = peer;
    proxy.tamper = { delayMs: 1, onBytes: (count) => count > 4 * MiB && void dying.stop("SIGKILL") };
    const broken = await download(`${mirror.url}/v2/lain/dies/blobs/${digest}`);
    expect(broken.declared).toBe(content.length);
    expect(broken).toMatchObject({ status: 200, broken: true });
    await dying.stop("SIGKILL");
    expect(await storedBlobs(mirror.root!)).not.toContain(digest);
    await expect.poll(() => uploadsLeft(mirror.root!, "lain/dies"), { timeout: 5000 }).toEqual([]);

    proxy.tamper = {};
    await startPeer();
    const retried = await download(`${mirror.url}/v2/lain/dies/blobs/${digest}`);
    expect(retried).toMatchObject({ status: 200, length: content.length, digest });
    // The first GET, its three Range GETs for the rest (refused: the peer is down), the retry.
    expect(proxy.count("GET", new RegExp(`/blobs/${digest}`))).toBe(5);
  });

  it("refuses bytes that do not match the digest: the transfer breaks before its last byte and nothing is cached", async () => {
    const content = randomBytes(4 * MiB);
    const digest = sha256(content);
    await pushBlob(peer.url, "lain/lies", { mediaType: "application/octet-stream", content, digest });
    proxy.tamper = { corrupt: true };
    const lied = await download(`${mirror.url}/v2/lain/lies/blobs/${digest}`);
    expect(lied.length).toBeLessThan(content.length);
    expect(await storedBlobs(mirror.root!)).not.toContain(digest);

    proxy.tamper = {};
    expect(await download(`${mirror.url}/v2/lain/lies/blobs/${digest}`)).toMatchObject({ status: 200, digest });
  });

  it("gives up on a peer that stalls longer than proxy.timeouts.idle: broken transfer, nothing cached", async () => {
    const content = randomBytes(2 * MiB);
    const digest = sha256(content);
    await pushBlob(peer.url, "lain/slow", { mediaType: "application/octet-stream", content, digest });
    const impatient = await startTestRegistry({ extraYaml: mirrorYaml(proxy.url).replace("idle: 5s", "idle: 300ms") });
    try {
      proxy.tamper = { delayMs: 1500 };
      const stalled = await download(`${impatient.url}/v2/lain/slow/blobs/${digest}`);
      expect(stalled.length).toBeLessThan(content.length);
      expect(await storedBlobs(impatient.root!)).not.toContain(digest);
      proxy.tamper = {};
      expect(await download(`${impatient.url}/v2/lain/slow/blobs/${digest}`)).toMatchObject({ status: 200, digest });
    } finally {
      await impatient.close();
    }
  });

  it("takes no push, mount or delete in what it mirrors (proxy.pushes: refuse), and names the peer to push to", async () => {
    const image = randomImage({ layers: 1 });
    await pushImage(peer.url, "lain/readonly", "v1", image);
    const base = `${mirror.url}/v2/lain/readonly`;
    const attempts: Array<[string, string, Parameters<typeof call>[2]?]> = [
      ["PUT", `${base}/manifests/v1`, { headers: { "content-type": image.manifest.mediaType }, body: image.manifest.content }],
      ["PUT", `${base}/manifests/${image.manifest.digest}`, { headers: { "content-type": image.manifest.mediaType }, body: image.manifest.content }],
      ["POST", `${base}/blobs/uploads/`],
      ["POST", `${base}/blobs/uploads/?digest=${image.config.digest}`, { body: image.config.content }],
      ["POST", `${base}/blobs/uploads/?mount=${image.config.digest}&from=lain/single`],
      ["PATCH", `${base}/blobs/uploads/0aa1b8a0-5f8f-4a7f-9f52-6d6c3bd9f6a1`, { body: "x" }],
      ["DELETE", `${base}/manifests/v1`],
      ["DELETE", `${base}/manifests/${image.manifest.digest}`],
      ["DELETE", `${base}/blobs/${image.config.digest}`],
    ];
    for (const [method, url, options] of attempts) {
      const reply = await call(method, url, options);
      expect(reply.status, `${method} ${url}`).toBe(403);
      expect(errorCode(reply)).toBe("DENIED");
      expect(reply.text).toContain(`push to ${proxy.url}`);
    }
    // Reads go on, and a HEAD that says a blob exists still lets a client skip it elsewhere.
    expect((await call("HEAD", `${base}/blobs/${image.config.digest}`)).status).toBe(200);
    const served = await call("GET", `${base}/manifests/v1`, { headers: { accept: image.manifest.mediaType } });
    expect(served.headers["docker-content-digest"]).toBe(image.manifest.digest);
  });

  it("as a standby (proxy.pushes: writeback) refuses writes while the peer answers, takes them while it does not, and writes them back", async () => {
    const base = randomImage({ layers: 2 });
    await pushImage(peer.url, "lain/app", "base", base);
    // The standby holds the base image, as a node mirror that pulled it does.
    for (const blob of [base.config, ...base.layers]) expect((await call("GET", `${standby.url}/v2/lain/app/blobs/${blob.digest}`, { headers: BASIC })).status).toBe(200);
    const own = randomImage({ layers: 1 });
    const manifest = JSON.parse(own.manifest.content.toString()) as { layers: unknown[] };
    manifest.layers = [{ mediaType: base.layers[0]!.mediaType, digest: base.layers[0]!.digest, size: base.layers[0]!.content.length }, ...manifest.layers];
    const content = Buffer.from(JSON.stringify(manifest));
    const mine: Image = { ...own, manifest: { ...own.manifest, content, digest: sha256(content) } };
    // While the peer answers, writes are the peer's: no push, no delete here.
    const refused = await call("PUT", `${standby.url}/v2/lain/app/manifests/mine`, { headers: { ...BASIC, "content-type": own.manifest.mediaType }, body: content });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain(`push to ${standbyLink.url}`);
    expect((await call("DELETE", `${standby.url}/v2/lain/app/manifests/base`, { headers: BASIC })).status).toBe(403);
    expect((await call("GET", `${peer.url}/v2/lain/app/manifests/mine`)).status).toBe(404);

    await pushToStandbyWhilePeerDown("lain/app", "mine", mine);
    const onPeer = await call("GET", `${peer.url}/v2/lain/app/manifests/mine`, { headers: { accept: own.manifest.mediaType } });
    expect(onPeer.body.equals(content)).toBe(true);
    for (const blob of [own.config, ...own.layers]) expect((await call("GET", `${peer.url}/v2/lain/app/blobs/${blob.digest}`)).body.equals(blob.content)).toBe(true);
    const tags = await call("GET", `${standby.url}/v2/lain/app/tags/list`, { headers: BASIC });
    expect(tags.json<{ tags: string[] }>().tags).toEqual(["base", "mine"]);
    const served = await call("GET", `${standby.url}/v2/lain/app/manifests/base`, { headers: { ...BASIC, accept: base.manifest.mediaType } });
    expect(served.headers["docker-content-digest"]).toBe(base.manifest.digest);
  });

  it("accepts containerd's ?ns= parameter on mirror requests", async () => {
    const image = randomImage({ layers: 1 });
    await pushImage(peer.url, "lain/ns", "v1", image);
    const manifest = await call("GET", `${mirror.url}/v2/lain/ns/manifests/v1?ns=registry.lain.local`, { headers: { accept: image.manifest.mediaType } });
    expect(manifest.status).toBe(200);
    const blob = await download(`${mirror.url}/v2/lain/ns/blobs/${image.layers[0]!.digest}?ns=registry.lain.local`);
    expect(blob.digest).toBe(image.layers[0]!.digest);
  });

  it("keeps serving what it cached when the peer is down (stale tags say so, /health says degraded), and names the peer on a miss", async () => {
    const image = randomImage({ layers: 2 });
    await pushImage(peer.url, "lain/survivor", "v1", image);
    const short = await startTestRegistry({ extraYaml: `${METRICS_ON_MAIN_PORT}\n${mirrorYaml(proxy.url).replace("ttl: 1h", "ttl: 1ms")}` });
    type Health = { status: string; version: string; upstream: { url: string; reachable: boolean; downSince?: string; error?: string } };
    const health = async () => (await call("GET", `${short.url}/health`)).json<Health>();
    const upstreamUp = async () => sample((await call("GET", `${short.url}/metrics`)).text, "registry_proxy_upstream_up");
    try {
      await skopeo("copy", `docker://${short.host}/lain/survivor:v1`, `oci:${join(work, "survivor-1")}:v1`);
      expect(await health()).toMatchObject({ status: "ok", version: expect.stringMatching(/^\d+\.\d+\.\d+/), upstream: { url: proxy.url, reachable: true } });
      expect(await upstreamUp()).toBe(1);
      expect((await call("GET", `${short.url}/metrics`)).text).toMatch(/^registry_build_info\{version="\d+\.\d+\.\d+[^"]*",nodejs="v\d+\.\d+\.\d+"\} 1$/m);
      await peer.stop("SIGKILL");
      // The answer of the last check is reused a few seconds; then the next says what is true.
      await expect.poll(async () => (await health()).status, { timeout: 15_000, interval: 500 }).toBe("degraded");
      const down = await call("GET", `${short.url}/health`);
      expect(down.status).toBe(200);
      expect(down.json<Health>().upstream).toMatchObject({ url: proxy.url, reachable: false, downSince: expect.any(String), error: expect.stringContaining(proxy.url) });
      expect(await upstreamUp()).toBe(0);

      const out = join(work, "survivor-2");
      await skopeo("copy", `docker://${short.host}/lain/survivor:v1`, `oci:${out}:v1`);
      await expectSameImage(out, image);
      const stale = await call("GET", `${short.url}/v2/lain/survivor/manifests/v1`, { headers: { accept: image.manifest.mediaType } });
      expect(stale.status).toBe(200);
      expect(stale.headers.warning).toMatch(/^110 - "Response is Stale: upstream http:\/\/127\.0\.0\.1:\d+ is unreachable/);

      const miss = await call("GET", `${short.url}/v2/lain/survivor/manifests/v2`);
      expect(miss.status).toBe(503);
      expect(errorCode(miss)).toBe("UNAVAILABLE");
      expect(miss.text).toContain(proxy.url);

      // A blob it does not hold: a HEAD says so (a push goes on), a GET cannot be answered.
      const absent = sha256("held by nobody");
      const head = await call("HEAD", `${short.url}/v2/lain/survivor/blobs/${absent}`);
      expect(head.status).toBe(404);
      expect(head.headers.warning).toMatch(new RegExp(`^112 - "Disconnected Operation: upstream ${proxy.url.replace(/\./g, "\\.")} is unreachable`));
      const get = await call("GET", `${short.url}/v2/lain/survivor/blobs/${absent}`);
      expect(get.status).toBe(503);
      expect(get.text).toContain(proxy.url);
      // A standby takes its users' pushes while its peer is down.
      const pushed = randomImage({ layers: 2 });
      const source = join(work, "push-while-down");
      await writeOciLayout(source, [{ tag: "v1", manifest: pushed.manifest }], [pushed.manifest, pushed.config, ...pushed.layers]);
      const creds = `${CI.user}:${CI.password}`;
      await skopeo("copy", "--dest-creds", creds, `oci:${source}:v1`, `docker://${standby.host}/lain/pushed-while-down:v1`);
      const back = join(work, "push-while-down-out");
      await skopeo("copy", "--src-creds", creds, `docker://${standby.host}/lain/pushed-while-down@${pushed.manifest.digest}`, `oci:${back}:v1`);
      await expectSameImage(back, pushed);
    } finally {
      await short.close();
      await startPeer();
    }
  });

  it("revalidates a tag with a HEAD once ttl has passed and follows it when it moved", async () => {
    const short = await startTestRegistry({ extraYaml: mirrorYaml(proxy.url).replace("ttl: 1h", "ttl: 0s") });
    try {
      const first = randomImage({ layers: 1 });
      await pushImage(peer.url, "lain/moving", "latest", first);
      const get = () => call("GET", `${short.url}/v2/lain/moving/manifests/latest`, { headers: { accept: first.manifest.mediaType } });
      expect((await get()).headers["docker-content-digest"]).toBe(first.manifest.digest);
      expect((await get()).headers["docker-content-digest"]).toBe(first.manifest.digest);
      expect(proxy.count("GET", /\/lain\/moving\/manifests\/latest$/)).toBe(1);
      expect(proxy.count("HEAD", /\/lain\/moving\/manifests\/latest$/)).toBe(1);

      const second = randomImage({ layers: 1 });
      await pushImage(peer.url, "lain/moving", "latest", second);
      expect((await get()).headers["docker-content-digest"]).toBe(second.manifest.digest);
    } finally {
      await short.close();
    }
  });

  it("lists tags merged from the peer and its own pushes (a standby's)", async () => {
    const image = randomImage({ layers: 1 });
    await pushImage(peer.url, "lain/tags", "from-peer", image);
    await pushToStandbyWhilePeerDown("lain/tags", "from-mirror", randomImage({ layers: 1 }));
    const tags = await call("GET", `${standby.url}/v2/lain/tags/tags/list`, { headers: BASIC });
    expect(tags.json<{ tags: string[] }>().tags).toEqual(["from-mirror", "from-peer"]);
    const page = await call("GET", `${standby.url}/v2/lain/tags/tags/list?n=1`, { headers: BASIC });
    expect(page.json<{ tags: string[] }>().tags).toEqual(["from-mirror"]);
    expect(page.headers.link).toContain("last=from-mirror");
  });

  it("merges the peer's catalog with its own repositories", async () => {
    const catalog = await call("GET", `${mirror.url}/v2/_catalog`);
    const names = catalog.json<{ repositories: string[] }>().repositories;
    expect(names).toEqual(expect.arrayContaining(["lain/single", "lain/multi", "lain/tags", "lain/app"]));
    expect(names).toEqual([...names].sort());
  });
});

describe.skipIf(!available)("mirror: disk full while caching", () => {
  let work: string;
  let store: string;
  let peer: TestRegistry;
  let mirror: TestRegistry;
  let mounted = false;

  beforeAll(async () => {
    work = await tempDir("lain-mirror-full-");
    store = join(work, "store");
    peer = await startTestRegistry();
    try {
      await mountTmpfs(store, "8m");
      mounted = true;
    } catch (err) {
      if (process.env.REQUIRE_INTEGRATION === "1") throw err;
    }
    mirror = await startTestRegistry({ root: store, extraYaml: mirrorYaml(peer.url, `  spooldir: ${work}`) });
  });
  afterAll(async () => {
    await mirror?.close();
    await peer?.close();
    if (mounted) unmount(store);
    await rm(work, { recursive: true, force: true });
  });

  it("still streams the blob to the client, and keeps nothing of it", async (ctx) => {
    if (!mounted) ctx.skip();
    const content = randomBytes(24 * MiB);
    const digest = sha256(content);
    await pushBlob(peer.url, "lain/full", { mediaType: "application/octet-stream", content, digest });
    const got = await download(`${mirror.url}/v2/lain/full/blobs/${digest}`);
    expect(got).toMatchObject({ status: 200, length: content.length, digest });
    expect(await storedBlobs(store)).not.toContain(digest);
    await expect.poll(() => uploadsLeft(store, "lain/full"), { timeout: 5000 }).toEqual([]);
    expect((await stat(store)).isDirectory()).toBe(true);
  });
});
