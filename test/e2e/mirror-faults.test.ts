import { randomBytes } from "node:crypto";
import { chmod, mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CountingProxy } from "../helpers/counting-proxy.js";
import { startDistribution } from "../helpers/distribution.js";
import { download, type Outcome } from "../helpers/download.js";
import { call } from "../helpers/http.js";
import { pushBlob, sha256 } from "../helpers/oci.js";
import { cliArgs, freePort, startServerProcess, type ServerProcess } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { storedBlobs } from "../helpers/store.js";
import { fillUp, mountTmpfs, unmount } from "../helpers/tmpfs.js";
import { hasTool } from "../helpers/tools.js";

const available = hasTool("docker-registry") && hasTool("setpriv");
const MiB = 1024 * 1024;

/** The only three endings a client may see: the right bytes, a clean spec error, a broken transfer. Never complete wrong bytes. */
function expectHonest(outcome: Outcome, digest: string): void {
  if (outcome.status === 200) {
    if (!outcome.broken) expect(outcome.digest).toBe(digest);
  } else {
    expect(outcome.status).toBeGreaterThanOrEqual(400);
    expect(outcome.code).toBeDefined();
  }
}


/**
 * A mirror process, its peer (Debian's docker-registry) behind a proxy that injects the peer's
 * faults, its spool and its store on small tmpfs mounts that fill up, and a spool directory
 * that goes missing or unwritable; the mirror runs without CAP_DAC_OVERRIDE so that file
 * permissions bind it as they bind an unprivileged service. Every fault, with clients joining
 * at each stage of a fill, ends for each client in the right bytes, a clean error status or a
 * broken transfer; the process lives through all of them and its last resort never fires.
 */
describe.skipIf(!available)("mirror faults: no fault crashes the mirror or gives a client wrong bytes", () => {
  let work: string;
  let spoolMount: string;
  let storeMount: string;
  let spoolDir: string;
  let store: string;
  let peer: ServerProcess;
  let proxy: CountingProxy;
  /** Its store is the spool where the store has local files; this one's is not (spools in spoolDir). */
  let mirror: ServerProcess;
  let spooling: ServerProcess;
  let mounted = false;

  beforeAll(async () => {
    work = await tempDir("lain-mirror-faults-");
    spoolMount = join(work, "spool-fs");
    storeMount = join(work, "store-fs");
    await mountTmpfs(spoolMount, "64m");
    await mountTmpfs(storeMount, "64m");
    mounted = true;
    spoolDir = join(spoolMount, "spool");
    store = join(storeMount, "store");
    const peerRoot = join(work, "peer");
    await mkdir(peerRoot);
    peer = await startDistribution({ root: peerRoot, secret: "peer", configDir: work });
    proxy = await CountingProxy.start(peer.url);
    mirror = await startMirror("mirror", `{filesystem: {rootdirectory: ${store}}}`);
    spooling = await startMirror("spooling", "{inmemory: {}}");
  });

  /** A mirror process of the peer (through the proxy) with this store, spooling in spoolDir. */
  async function startMirror(name: string, storage: string): Promise<ServerProcess> {
    const config = join(work, `${name}.yml`);
    await writeFile(
      config,
      [
        "version: 0.1",
        "log: {level: info}",
        `storage: ${storage}`,
        "http: {secret: faults}",
        "proxy:",
        `  remoteurl: ${proxy.url}`,
        `  spooldir: ${spoolDir}`,
        "  timeouts: {connect: 2s, response: 10s, idle: 5s}",
      ].join("\n"),
    );
    const port = await freePort();
    const dropDacOverride = ["--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"];
    return startServerProcess("setpriv", [...dropDacOverride, process.execPath, ...cliArgs("serve", config)], port, {
      ...process.env,
      REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    });
  }
  afterEach(() => {
    proxy.tamper = {};
  });
  afterAll(async () => {
    await mirror?.stop();
    await spooling?.stop();
    await proxy?.close();
    await peer?.stop();
    if (mounted) for (const dir of [spoolMount, storeMount]) unmount(dir);
    await rm(work, { recursive: true, force: true });
  });

  async function peerBlob(mib: number, repo = "lain/faults", through = mirror): Promise<{ content: Buffer; digest: string; url: string }> {
    const content = randomBytes(mib * MiB);
    const digest = sha256(content);
    await pushBlob(peer.url, repo, { mediaType: "application/octet-stream", content, digest });
    return { content, digest, url: `${through.url}/v2/${repo}/blobs/${digest}` };
  }

  const upstreamGets = (digest: string) => proxy.count("GET", new RegExp(`/blobs/${digest}`));
  const uploadsLeft = (repo: string) => readdir(join(store, "docker/registry/v2/repositories", repo, "_uploads")).catch(() => [] as string[]);

  /** Clients started when so many bytes have passed from the peer to the mirror (0: at once). */
  function clientsAt(url: string, marks: number[], leaveAfter: Array<number | undefined> = []): Promise<Outcome[]> {
    const started: Array<Promise<Outcome>> = [];
    let passed = 0;
    const due = () => marks.forEach((mark, i) => {
      if (started[i] === undefined && passed >= mark) started[i] = download(url, leaveAfter[i]);
    });
    const previous = proxy.tamper.onBytes;
    proxy.tamper.onBytes = (count) => {
      passed = count;
      previous?.(count);
      due();
    };
    due();
    return (async () => {
      // Marks never reached (the transfer broke first) start once it is over: they meet its aftermath.
      for (let i = 0; i < 600 && started.filter(Boolean).length < marks.length; i++) {
        const settled = await Promise.race([Promise.all(started.filter(Boolean)), new Promise((r) => setTimeout(() => r(undefined), 50))]);
        if (settled !== undefined && started.filter(Boolean).length < marks.length) {
          marks.forEach((_, i) => (started[i] ??= download(url, leaveAfter[i])));
        }
      }
      return Promise.all(started);
    })();
  }

  it("the peer resets the connection before answering: every coalesced client gets 503 UNAVAILABLE", async () => {
    const blob = await peerBlob(1);
    proxy.tamper = { refuse: true };
    const outcomes = await Promise.all([0, 1, 2].map(() => download(blob.url)));
    for (const o of outcomes) expect(o).toMatchObject({ status: 503, code: "UNAVAILABLE" });
    proxy.tamper = {};
    expect(await download(blob.url)).toMatchObject({ status: 200, digest: blob.digest });
  });

  it("the peer resets mid-body once: the fill asks for the rest (a Range GET), clients that joined at 0, 10 and 30 % get every byte, the blob is cached", async () => {
    const blob = await peerBlob(8);
    proxy.tamper = { delayMs: 1, cutAfter: 0.4 * blob.content.length, cuts: 1 };
    const outcomes = await clientsAt(blob.url, [0, 0.1, 0.3].map((f) => f * blob.content.length));
    for (const o of outcomes) expect(o).toMatchObject({ status: 200, broken: false, digest: blob.digest });
    expect(upstreamGets(blob.digest)).toBe(2);
    for (let i = 0; i < 100 && !(await storedBlobs(store)).includes(blob.digest); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await storedBlobs(store)).toContain(blob.digest);
  });

  it("the peer resets mid-body every time: after three resumes clients that joined at 0, 1 and 2 % get broken transfers, nothing is cached, the next pull fetches again", async () => {
    const blob = await peerBlob(8);
    proxy.tamper = { delayMs: 1, cutAfter: 256 * 1024 };
    const outcomes = await clientsAt(blob.url, [0, 0.01, 0.02].map((f) => f * blob.content.length));
    for (const o of outcomes) {
      expectHonest(o, blob.digest);
      expect(o.broken || o.status === 503).toBe(true);
    }
    expect(upstreamGets(blob.digest)).toBe(4);
    expect(await storedBlobs(store)).not.toContain(blob.digest);
    proxy.tamper = {};
    expect(await download(blob.url)).toMatchObject({ status: 200, digest: blob.digest });
  });

  it("a client leaves mid-body: those that joined before and after it get every byte, and the blob is cached once", async () => {
    const blob = await peerBlob(8);
    proxy.tamper = { delayMs: 1 };
    const size = blob.content.length;
    const outcomes = await clientsAt(blob.url, [0, 0.1 * size, 0.5 * size], [0.2 * size, undefined, undefined]);
    expect(outcomes[0]!.length).toBeLessThan(size);
    for (const o of outcomes.slice(1)) expect(o).toMatchObject({ status: 200, length: size, digest: blob.digest });
    await expect.poll(() => storedBlobs(store), { timeout: 5000 }).toContain(blob.digest);
    expect(upstreamGets(blob.digest)).toBe(1);
  });

  it("the peer sends bytes that do not match the digest: no client, early or late, gets a complete transfer", async () => {
    const blob = await peerBlob(4);
    proxy.tamper = { delayMs: 1, corrupt: true };
    const outcomes = await clientsAt(blob.url, [0, 0.25, 0.75].map((f) => f * blob.content.length));
    for (const o of outcomes) {
      expectHonest(o, blob.digest);
      expect(o.length).toBeLessThan(blob.content.length);
    }
    expect(await storedBlobs(store)).not.toContain(blob.digest);
  });

  it("the spool directory vanished: a mirror spooling there makes it again and serves", async () => {
    await rm(spoolDir, { recursive: true, force: true });
    const blob = await peerBlob(2, "lain/faults", spooling);
    const outcomes = await Promise.all([0, 1, 2].map(() => download(blob.url)));
    for (const o of outcomes) expect(o).toMatchObject({ status: 200, digest: blob.digest });
    expect((await stat(spoolDir)).isDirectory()).toBe(true);
  });

  /** The mirror's log, which it writes in batches, eventually says this. */
  const logSays = (pattern: RegExp, of = mirror) => expect.poll(() => of.fullOutput(), { timeout: 5000 }).toMatch(pattern);

  it("the spool directory is not writable (EACCES): every client gets 503 UNAVAILABLE; once it is, the mirror serves", async () => {
    const blob = await peerBlob(2, "lain/faults", spooling);
    await chmod(spoolDir, 0o500);
    try {
      const outcomes = await Promise.all([0, 1, 2].map(() => download(blob.url)));
      for (const o of outcomes) expect(o).toMatchObject({ status: 503, code: "UNAVAILABLE" });
      await logSays(/cannot open a spool file.*EACCES|EACCES.*cannot open a spool file/, spooling);
    } finally {
      await chmod(spoolDir, 0o700);
    }
    expect(await download(blob.url)).toMatchObject({ status: 200, digest: blob.digest });
  });

  it("the spool fills up mid-blob (ENOSPC): clients that joined at 0, 2 and 6 MiB end honestly, nothing is cached", async () => {
    const blob = await peerBlob(12, "lain/faults", spooling);
    const empty = await fillUp(spoolMount, 4);
    try {
      proxy.tamper = { delayMs: 1 };
      const outcomes = await clientsAt(blob.url, [0, 2 * MiB, 6 * MiB]);
      for (const o of outcomes) {
        expectHonest(o, blob.digest);
        expect(o.length).toBeLessThan(blob.content.length);
      }
      await logSays(/ENOSPC/, spooling);
    } finally {
      await empty();
    }
    // Nothing was cached: the next pull fetches the blob from the peer again.
    const gets = upstreamGets(blob.digest);
    expect(await download(blob.url)).toMatchObject({ status: 200, digest: blob.digest });
    expect(upstreamGets(blob.digest)).toBe(gets + 1);
  });

  it("the store fills up while caching (it is the spool): the rest spills into spoolDir, clients joining at 0, 50 and 100 % get every byte; the store keeps nothing", async () => {
    const blob = await peerBlob(8, "lain/full");
    const empty = await fillUp(storeMount, 2);
    try {
      proxy.tamper = { delayMs: 1 };
      const size = blob.content.length;
      const outcomes = await clientsAt(blob.url, [0, 0.5 * size, size]);
      for (const o of outcomes) expect(o).toMatchObject({ status: 200, length: size, digest: blob.digest });
      await logSays(/could not cache a blob/);
    } finally {
      await empty();
    }
    expect(await storedBlobs(store)).not.toContain(blob.digest);
    await expect.poll(() => uploadsLeft("lain/full"), { timeout: 5000 }).toEqual([]);
  });

  it("after all of it the same process lives and is healthy, and its last resort never fired", async () => {
    expect(mirror.child.exitCode).toBeNull();
    expect(mirror.child.signalCode).toBeNull();
    expect((await call("GET", `${mirror.url}/health`)).status).toBe(200);
    const log = mirror.fullOutput();
    expect(log).toContain("lain-registry listening");
    expect(log).not.toMatch(/this is a bug of lain-registry/);
    expect(log).not.toMatch(/uncaught|Unhandled 'error' event/i);
    expect(spooling.child.exitCode).toBeNull();
    expect(spooling.fullOutput()).not.toMatch(/this is a bug of lain-registry|uncaught|Unhandled 'error' event/i);
  });
});
