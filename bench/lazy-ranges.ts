/**
 * Lazy pulls through a node mirror: ranges of a cold blob, the primary (Debian's docker-registry)
 * behind a link of its own for each contender, read from the primary directly, through lain's
 * mirror and through distribution's proxy. A snapshotter reads a layer's index at its end, then
 * the chunks of the files a container opens: the second measure reads 16 scattered ranges.
 */
import { execFile } from "node:child_process";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { startDistribution } from "../test/helpers/distribution.js";
import { LimitedLink } from "../test/helpers/limited-link.js";
import { freePort, startLainProcess, type ServerProcess } from "../test/helpers/process.js";
import { buildStargzDaemon, canMountFuse, pushLazyImage, startLazyNode, STARGZ_TOOLS } from "../test/helpers/stargz.js";
import { blobFile } from "../test/helpers/store.js";
import { installed } from "../test/helpers/tools.js";
import { makeBlobFile, median, MiB, pushBlob, settle } from "./load.js";

const run = promisify(execFile);
const LINK_MBIT = Number(process.env.BENCH_RANGES_MBIT ?? 400);
const BLOB_MIB = 128;
const ROUNDS = 2;
const SCATTERED = 16;
const REPO = "bench/lazy";

type Contender = "direct" | "lain" | "distribution";

export interface RangeMeasures {
  linkMbit: number;
  blobMiB: number;
  /** A 1 MiB range 126 MiB into a cold blob: ms to its first byte, and to its last (medians of the rounds). */
  tailFirstByteMs: Record<Contender, number>;
  tailRangeMs: Record<Contender, number>;
  /** 16 ranges of 64 KiB spread over a cold blob, read one after the other, ms in all. */
  scatteredMs: Record<Contender, number>;
  /** What each contender answered the tail range with (206, or 200 with the whole blob). */
  statuses: Record<Contender, number>;
}

/** One ranged GET with curl: its status, and ms to its first byte and to its last. */
async function rangeGet(url: string, range: string): Promise<{ status: number; firstByteMs: number; ms: number }> {
  const { stdout } = await run("curl", ["-s", "-o", "/dev/null", "-r", range, "-w", "%{http_code} %{time_starttransfer} %{time_total}", url], { timeout: 300_000 });
  const [status, firstByte, seconds] = stdout.trim().split(" ");
  if (status !== "206" && status !== "200") throw new Error(`curl -r ${range} ${url}: HTTP ${status}`);
  return { status: Number(status), firstByteMs: Number(firstByte) * 1000, ms: Number(seconds) * 1000 };
}

const exists = (path: string) => stat(path).then(() => true, () => false);

export async function measureLazyRanges(work: string, log: (line: string) => void): Promise<RangeMeasures> {
  const dir = join(work, "lazy-ranges");
  await mkdir(dir, { recursive: true });
  const primary = await startDistribution({ root: join(dir, "primary"), secret: "bench", configDir: dir });
  const servers: ServerProcess[] = [primary];
  const links: LimitedLink[] = [];
  const samples = { first: { direct: [], lain: [], distribution: [] }, tail: { direct: [], lain: [], distribution: [] }, scattered: { direct: [], lain: [], distribution: [] } } as Record<
    "first" | "tail" | "scattered",
    Record<Contender, number[]>
  >;
  const statuses: Record<Contender, number> = { direct: 0, lain: 0, distribution: 0 };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const contender of ["direct", "lain", "distribution"] as const) {
        // Each contender its own link, and a blob no mirror has seen.
        const link = await LimitedLink.start(primary.url, (LINK_MBIT * 1e6) / 8);
        links.push(link);
        const store = join(dir, `${contender}-${round}`);
        const server = await startContender(contender, link.url, store);
        if (server) servers.push(server);
        const base = server?.url ?? link.url;
        for (const measure of ["tail", "scattered"] as const) {
          const blob = await makeBlobFile(join(dir, `blob-${round}-${contender}-${measure}`), BLOB_MIB * MiB);
          await pushBlob(primary.url, REPO, blob);
          settle();
          const url = `${base}/v2/${REPO}/blobs/${blob.digest}`;
          if (measure === "tail") {
            const got = await rangeGet(url, `${126 * MiB}-${127 * MiB - 1}`);
            samples.first[contender].push(got.firstByteMs);
            samples.tail[contender].push(got.ms);
            statuses[contender] = got.status;
          } else {
            let ms = 0;
            for (let i = 0; i < SCATTERED; i++) {
              const start = Math.floor(((BLOB_MIB * MiB - 64 * 1024) * ((i * 7) % SCATTERED)) / SCATTERED);
              ms += (await rangeGet(url, `${start}-${start + 64 * 1024 - 1}`)).ms;
            }
            samples.scattered[contender].push(ms);
          }
          // What lain's mirror fetches in the background is over before the next measure.
          if (contender === "lain") for (let i = 0; i < 1200 && !(await exists(blobFile(store, blob.digest))); i++) await new Promise((r) => setTimeout(r, 100));
        }
        await server?.stop();
        await link.close();
      }
    }
  } finally {
    for (const server of servers) await server.stop().catch(() => undefined);
    for (const link of links) await link.close().catch(() => undefined);
  }
  const medians = (of: Record<Contender, number[]>) => ({ direct: median(of.direct), lain: median(of.lain), distribution: median(of.distribution) });
  log(`lazy ranges (ms): ${JSON.stringify(samples)}; statuses ${JSON.stringify(statuses)}`);
  return { linkMbit: LINK_MBIT, blobMiB: BLOB_MIB, tailFirstByteMs: medians(samples.first), tailRangeMs: medians(samples.tail), scatteredMs: medians(samples.scattered), statuses };
}

/** A cold mirror of the primary behind `upstream`; none for the direct reads. */
async function startContender(contender: Contender, upstream: string, store: string): Promise<ServerProcess | undefined> {
  if (contender === "direct") return undefined;
  await mkdir(store, { recursive: true });
  if (contender === "distribution") return startDistribution({ root: store, secret: "bench", configDir: store, extraYaml: `proxy:\n  remoteurl: ${upstream}` });
  const config = join(store, "lain.yml");
  await writeFile(config, `version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: ${store}}\nhttp:\n  secret: bench\nproxy:\n  remoteurl: ${upstream}\n`);
  return startLainProcess(config, await freePort());
}

export interface LazyPullMeasures {
  linkMbit: number;
  largeMiB: number;
  /** rpull of the eStargz image, then a container reading its small file, s (medians): from the primary, through a cold lain mirror. */
  lazyDirectSeconds: number;
  lazyMirrorSeconds: number;
  /** An ordinary pull (unpacked, overlayfs) of its gzip twin from the primary, then the same container, s. */
  fullGzipSeconds: number;
}

const LAZY_LARGE_MIB = 64;
/** A lazy pull takes under a second here: its median of more rounds. */
const LAZY_ROUNDS = 5;

/**
 * A lazy pull with a real client (containerd and the stargz snapshotter, test/helpers/stargz.ts):
 * undefined where the machine lacks them or FUSE.
 */
export async function measureLazyPull(work: string, log: (line: string) => void): Promise<LazyPullMeasures | undefined> {
  if (![...STARGZ_TOOLS, "docker-registry"].every(installed) || !canMountFuse()) return undefined;
  const dir = join(work, "lazy-pull");
  await mkdir(dir, { recursive: true });
  const daemon = await buildStargzDaemon();
  const primary = await startDistribution({ root: join(dir, "primary"), secret: "bench", configDir: dir });
  const samples = { direct: [] as number[], mirror: [] as number[], gzip: [] as number[] };
  let serial = 0;
  try {
    const builder = await startLazyNode(join(dir, "builder"), daemon, primary.host, primary.host);
    const image = await pushLazyImage(builder, join(dir, "image"), primary.host, "bench/lazy", LAZY_LARGE_MIB).finally(() => builder.stop());
    for (let round = 0; round < LAZY_ROUNDS; round++) {
      for (const contender of ["direct", "mirror", "gzip"] as const) {
        const link = await LimitedLink.start(primary.url, (LINK_MBIT * 1e6) / 8);
        const mirror = contender === "mirror" ? await startContender("lain", link.url, join(dir, `mirror-${round}`)) : undefined;
        const registry = mirror?.host ?? new URL(link.url).host;
        const node = await startLazyNode(join(dir, `node-${serial++}`), daemon, primary.host, registry);
        try {
          settle();
          const started = performance.now();
          if (contender === "gzip") {
            await node.ctr("images", "pull", "--plain-http", "--hosts-dir", node.hostsDir, image.gzip);
            await node.runContainer(image.gzip, ["/bin/busybox", "cat", image.small.path], "overlayfs");
          } else {
            await node.ctrRemote("images", "rpull", "--plain-http", "--hosts-dir", node.hostsDir, image.estargz);
            const read = await node.runContainer(image.estargz, ["/bin/busybox", "cat", image.small.path]);
            if (read !== image.small.content) throw new Error(`the lazily pulled container read ${JSON.stringify(read)}`);
          }
          samples[contender].push((performance.now() - started) / 1000);
        } finally {
          await node.stop();
          await mirror?.stop();
          await link.close();
        }
      }
    }
  } finally {
    await primary.stop();
  }
  log(`lazy pull (s): ${JSON.stringify(samples)}`);
  return { linkMbit: LINK_MBIT, largeMiB: LAZY_LARGE_MIB, lazyDirectSeconds: median(samples.direct), lazyMirrorSeconds: median(samples.mirror), fullGzipSeconds: median(samples.gzip) };
}
