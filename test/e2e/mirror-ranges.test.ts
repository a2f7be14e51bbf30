import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CountingProxy } from "../helpers/counting-proxy.js";
import { startDistribution } from "../helpers/distribution.js";
import { download } from "../helpers/download.js";
import { METRICS_ON_MAIN_PORT, scrape } from "../helpers/metrics.js";
import { pushBlob, sha256 } from "../helpers/oci.js";
import { freePort, startLainProcess, type ServerProcess } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const available = hasTool("docker-registry");
const MiB = 1024 * 1024;
const REPO = "lain/lazy";

/** One GET's answer: status, headers, and the body, or whether it broke off. */
interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  broken: boolean;
}

const agent = new Agent({ connections: 128 });

async function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(url, { headers, dispatcher: agent });
  const flat = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]));
  const chunks: Buffer[] = [];
  let broken = false;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) chunks.push(chunk);
  } catch {
    broken = true;
  }
  const body = Buffer.concat(chunks);
  return { status: res.statusCode, headers: flat, body, broken: broken || (flat["content-length"] !== undefined && body.length < Number(flat["content-length"])) };
}

/**
 * A lain mirror of Debian's docker-registry, through a proxy that counts the peer's answers and
 * slows or breaks blob bodies: ranges of blobs the mirror lacks, as lazy-pulling snapshotters
 * ask for them (docs/mirror.md).
 */
describe.skipIf(!available)("mirror: ranges of a cold blob are answered at once", () => {
  let work: string;
  let peer: ServerProcess;
  let proxy: CountingProxy;
  let mirror: ServerProcess;
  let keepOnlyRead: ServerProcess;

  beforeAll(async () => {
    work = await tempDir("lain-mirror-ranges-");
    peer = await startDistribution({ root: join(work, "peer"), secret: "peer", configDir: work });
    proxy = await CountingProxy.start(peer.url);
    mirror = await startMirror("mirror", true);
    keepOnlyRead = await startMirror("keep-only-read", false);
  });

  async function startMirror(name: string, fillOnRange: boolean): Promise<ServerProcess> {
    const config = join(work, `${name}.yml`);
    await writeFile(
      config,
      [
        "version: 0.1",
        "log: {level: info}",
        `storage: {filesystem: {rootdirectory: ${join(work, name)}}}`,
        "http:",
        "  secret: ranges",
        METRICS_ON_MAIN_PORT,
        "proxy:",
        `  remoteurl: ${proxy.url}`,
        `  fillonrange: ${fillOnRange}`,
        "  timeouts: {connect: 2s, response: 10s, idle: 5s}",
      ].join("\n"),
    );
    return startLainProcess(config, await freePort());
  }

  afterEach(() => {
    proxy.tamper = {};
  });

  afterAll(async () => {
    await mirror?.stop();
    await keepOnlyRead?.stop();
    await proxy?.close();
    await peer?.stop();
    await agent.close();
    await rm(work, { recursive: true, force: true });
  });

  /** A fresh blob in the peer, and its URL through a mirror. */
  async function coldBlob(mib: number, through = mirror): Promise<{ content: Buffer; digest: string; url: string }> {
    const content = randomBytes(mib * MiB);
    const digest = sha256(content);
    await pushBlob(peer.url, REPO, { mediaType: "application/octet-stream", content, digest });
    return { content, digest, url: `${through.url}/v2/${REPO}/blobs/${digest}` };
  }

  /** The peer's answers for the blob: whole bodies (200) and ranges (206). */
  const peerAnswers = (digest: string, status: number) => proxy.seen.filter((s) => s.method === "GET" && s.path.includes(digest) && s.status === status).length;
  const ranges = async (through = mirror) => {
    const metrics = await scrape(`${through.url}/metrics`);
    return (served: string) => metrics("registry_proxy_range_requests_total", { served });
  };
  /** Waits until no fill runs in the mirror: its fetch of the whole blob is over, one way or the other. */
  const quiet = (through = mirror) => until(async () => (await scrape(`${through.url}/metrics`))("registry_proxy_fetches_in_flight") === 0, "the mirror's fills to end", 60_000);

  function expectRange(answer: Answer, content: Buffer, start: number, end: number): void {
    expect(answer.status).toBe(206);
    expect(answer.broken).toBe(false);
    expect(answer.headers["content-range"]).toBe(`bytes ${start}-${end}/${content.length}`);
    expect(answer.body.equals(content.subarray(start, end + 1))).toBe(true);
  }

  it("start, middle, end, suffix and open-ended ranges: 206s with the right bytes, passed through while the fill is far off; then one fill, verified and kept", async () => {
    const { content, digest, url } = await coldBlob(8);
    const size = content.length;
    // The whole blob comes slowly (each chunk held 10 ms): the fill is seconds from its end.
    proxy.tamper = { delayMs: 10, statuses: [200] };
    const before = await ranges();
    const [start, middle, end, suffix, open] = await Promise.all([
      get(url, { range: "bytes=0-1023" }),
      get(url, { range: `bytes=${4 * MiB}-${4 * MiB + 4095}` }),
      get(url, { range: `bytes=${size - 100}-${size - 1}` }),
      get(url, { range: "bytes=-2048" }),
      get(url, { range: `bytes=${size - 5000}-` }),
    ]);
    expectRange(start, content, 0, 1023);
    expectRange(middle, content, 4 * MiB, 4 * MiB + 4095);
    expectRange(end, content, size - 100, size - 1);
    expectRange(suffix, content, size - 2048, size - 1);
    expectRange(open, content, size - 5000, size - 1);
    const after = await ranges();
    // The four far from the start cannot have waited for the fill: they were passed through.
    expect(after("passthrough") - before("passthrough")).toBeGreaterThanOrEqual(4);
    expect(after("passthrough") + after("fill") - before("passthrough") - before("fill")).toBe(5);
    expect(peerAnswers(digest, 206)).toBeGreaterThanOrEqual(4);
    proxy.tamper = {};
    await quiet();
    // One whole fill, started by the first range and shared by the others, verified and kept.
    expect(peerAnswers(digest, 200)).toBe(1);
    const again = await get(url, { range: `bytes=${MiB}-${2 * MiB - 1}` });
    expectRange(again, content, MiB, 2 * MiB - 1);
    expect((await ranges())("store") - after("store")).toBe(1);
    expect(peerAnswers(digest, 200)).toBe(1);
  }, 60_000);

  it("unsatisfiable, multi-range and If-Range on a cold blob follow RFC 9110, as on a stored one", async () => {
    for (const stored of [false, true]) {
      const { content, digest, url } = await coldBlob(1);
      if (stored) expect((await download(url)).digest).toBe(digest);
      const size = content.length;
      const unsatisfiable = await get(url, { range: `bytes=${size}-` });
      expect(unsatisfiable.status).toBe(416);
      expect(unsatisfiable.headers["content-range"]).toBe(`bytes */${size}`);
      expect(JSON.parse(unsatisfiable.body.toString()).errors[0].code).toBe("RANGE_NOT_SATISFIABLE");
      // Several ranges: the RFC lets a server send the whole instead, as it does.
      const multi = await get(url, { range: "bytes=0-1,10-20" });
      expect(multi.status).toBe(200);
      expect(multi.body.equals(content)).toBe(true);
      const etag = `"${digest}"`;
      expectRange(await get(url, { range: "bytes=5-9", "if-range": etag }), content, 5, 9);
      for (const other of ['"sha256:0000"', `W/${etag}`, "Sat, 01 Jan 2000 00:00:00 GMT"]) {
        const whole = await get(url, { range: "bytes=5-9", "if-range": other });
        expect(whole.status).toBe(200);
        expect(whole.body.equals(content)).toBe(true);
      }
      await quiet();
    }
  }, 60_000);

  it("a peer's 416 that leaves out the blob's size: a HEAD asks it, and the client gets a proper 416", async () => {
    const { content, digest, url } = await coldBlob(1);
    proxy.tamper = { dropHeaders: ["content-range"] };
    const refused = await get(url, { range: `bytes=${content.length + 10}-` });
    expect(refused.status).toBe(416);
    expect(refused.headers["content-range"]).toBe(`bytes */${content.length}`);
    expect(proxy.count("HEAD", new RegExp(`/blobs/${digest}`))).toBe(1);
    proxy.tamper = {};
    await quiet();
  }, 60_000);

  it("a fill in progress: a range whose bytes have arrived is served from it, one further on is passed through", async () => {
    const { content, digest, url } = await coldBlob(8);
    let passed = 0;
    proxy.tamper = { delayMs: 10, statuses: [200], onBytes: (count) => (passed = count) };
    expectRange(await get(url, { range: "bytes=0-99" }), content, 0, 99);
    await until(() => passed > 3 * MiB, "the fill to pass 3 MiB");
    const before = await ranges();
    expectRange(await get(url, { range: `bytes=${MiB}-${2 * MiB - 1}` }), content, MiB, 2 * MiB - 1);
    const middle = await ranges();
    expect(middle("fill") - before("fill")).toBe(1);
    expectRange(await get(url, { range: `bytes=${7 * MiB}-${7 * MiB + 999}` }), content, 7 * MiB, 7 * MiB + 999);
    expect((await ranges())("passthrough") - middle("passthrough")).toBe(1);
    proxy.tamper = {};
    await quiet();
    expect(peerAnswers(digest, 200)).toBe(1);
  }, 60_000);

  it("the peer dying during a passthrough: the client's 206 breaks off, nothing is kept from it, and the mirror goes on", async () => {
    const { content, digest, url } = await coldBlob(4);
    // Every body from the peer is reset after 256 KiB: the fill's (and its resumptions), and the range's.
    proxy.tamper = { delayMs: 5, cutAfter: 256 * 1024 };
    const cut = await get(url, { range: `bytes=${MiB}-${3 * MiB - 1}` });
    expect(cut.status).toBe(206);
    expect(cut.broken).toBe(true);
    await quiet();
    proxy.tamper = {};
    expect((await get(`${mirror.url}/v2/`)).status).toBe(200);
    expectRange(await get(url, { range: `bytes=${MiB}-${3 * MiB - 1}` }), content, MiB, 3 * MiB - 1);
    await quiet();
    expect((await download(url)).digest).toBe(digest);
  }, 60_000);

  it("a fill that fails its digest check keeps nothing; ranges served meanwhile were the peer's word, and later ones pass through again", async () => {
    const { content, digest, url } = await coldBlob(4);
    // One byte in the middle of every whole body from the peer is flipped.
    proxy.tamper = { corrupt: true, statuses: [200] };
    expectRange(await get(url, { range: "bytes=100-199" }), content, 100, 199);
    await quiet();
    const before = await ranges();
    expectRange(await get(url, { range: "bytes=200-299" }), content, 200, 299);
    await quiet();
    // Not kept: nothing was served from the store, and a second fill was needed.
    expect((await ranges())("store")).toBe(before("store"));
    expect(peerAnswers(digest, 200)).toBe(2);
    proxy.tamper = {};
    expect((await download(url)).digest).toBe(digest);
  }, 60_000);

  it("100 concurrent ranges of one cold blob: all right, one whole fill", async () => {
    const { content, digest, url } = await coldBlob(8);
    proxy.tamper = { delayMs: 10, statuses: [200] };
    const wanted = Array.from({ length: 100 }, (_, i) => {
      const start = Math.floor((i * content.length) / 100);
      return { start, end: Math.min(content.length - 1, start + 8191) };
    });
    const answers = await Promise.all(wanted.map(({ start, end }) => get(url, { range: `bytes=${start}-${end}` })));
    answers.forEach((answer, i) => expectRange(answer, content, wanted[i]?.start ?? 0, wanted[i]?.end ?? 0));
    proxy.tamper = {};
    await quiet();
    expect(peerAnswers(digest, 200)).toBe(1);
  }, 60_000);

  it("proxy.fillonrange: false keeps only what is read: ranges pass through, no fill starts", async () => {
    const { content, digest, url } = await coldBlob(2, keepOnlyRead);
    expectRange(await get(url, { range: "bytes=10-19" }), content, 10, 19);
    expectRange(await get(url, { range: "bytes=-10" }), content, content.length - 10, content.length - 1);
    await quiet(keepOnlyRead);
    expect(peerAnswers(digest, 200)).toBe(0);
    expect((await ranges(keepOnlyRead))("passthrough")).toBeGreaterThanOrEqual(2);
    // A whole pull fills as ever; ranges are then served from the store.
    expect((await download(url)).digest).toBe(digest);
    await quiet(keepOnlyRead);
    expectRange(await get(url, { range: "bytes=10-19" }), content, 10, 19);
    expect(peerAnswers(digest, 200)).toBe(1);
  }, 60_000);
});
