/**
 * `npm run bench`: lain-registry and Debian's docker-registry (CNCF distribution) side by side
 * on this machine, each on its own temporary store, measured by the same client in the same run.
 * Prints lain / distribution ratios and writes bench/results/<date>.json (a later run of the day: <date>b.json, and so on).
 *
 * BENCH_BLOB_MIB (default 256) and BENCH_SECONDS (default 10) shrink a run for a quick look.
 */
import { execFileSync } from "node:child_process";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { startDistribution } from "../test/helpers/distribution.js";
import { pushImage, randomImage } from "../test/helpers/oci.js";
import { freePort, startLainProcess, type ServerProcess } from "../test/helpers/process.js";
import { tempDir } from "../test/helpers/registry.js";
import { RGW_TOOLS, startRgw } from "../test/helpers/rgw.js";
import { createBucket, s3StorageYaml } from "../test/helpers/s3.js";
import { hasTool } from "../test/helpers/tools.js";
import { FENCE_TIMING } from "../src/gc/removal-fence.js";
import { measureGc, measureGcS3 } from "./gc.js";
import { measureGcMemory, measureGcMemoryS3 } from "./gc-memory.js";
import { measureFleet } from "./fleet.js";
import { clusterRowName, measureFleetCluster } from "./fleet-cluster.js";
import { measureLazyPull, measureLazyRanges } from "./lazy-ranges.js";
import { MIRROR_CONCURRENT, measureMirror, type MirrorMeasures } from "./mirror.js";
import { SOAK_SECONDS, measureSoaks } from "./soak.js";
import { measureWriteback } from "./writeback.js";
import { measureLifecycle } from "./lifecycle.js";
import {
  abHead,
  cpuSeconds,
  ddFdatasyncMiBps,
  loopbackMiBps,
  makeBlobFile,
  median,
  MiB,
  peakRssDuring,
  pullBlob,
  pushBlob,
  pushBlobChunked,
  rssMiB,
  settle,
  settleWriteback,
  splitBlob,
  startNodeFloor,
  wrk,
  type BlobFile,
} from "./load.js";

const BLOB_MIB = Number(process.env.BENCH_BLOB_MIB ?? 256);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
/** The parts measured after the core (pushes, pulls, request rates); BENCH_PARTS=mirror measures the mirror alone beside the core. */
const PARTS = ["mirror", "ranges", "fleet", "cluster", "writeback", "gc", "lifecycle", "gc-memory", "s3", "soak"] as const;
const CHOSEN = process.env.BENCH_PARTS?.split(",").map((part) => part.trim()) ?? [...PARTS];
for (const part of CHOSEN) if (!(PARTS as readonly string[]).includes(part)) throw new Error(`BENCH_PARTS: unknown part ${part} (${PARTS.join(", ")})`);
const chosen = (part: (typeof PARTS)[number]) => CHOSEN.includes(part);
const ROUNDS = 5;
/** PATCHes of a chunked push. */
const CHUNKS = 4;
const S3_ROUNDS = 3;
const MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

interface Measures {
  pushMiBps: number;
  chunkedPushMiBps: number;
  /** Server CPU (user and system, all threads) per GiB of monolithic pushes. */
  pushCpuSecondsPerGiB: number;
  pullMiBps: number;
  pull4MiBps: number;
  manifestRps: number;
  manifestP99ms: number;
  headRps: number;
  headP99ms: number;
  idleRssMiB: number;
  manifestRssMiB: number;
  push64RssMiB: number;
  peakRssMiB: number;
}

interface Contender {
  name: string;
  server: ServerProcess;
  measures: Partial<Measures>;
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/**
 * Runs `round` ROUNDS times for each contender, alternating between them so that both see the
 * same machine state, and records the median of what it returns.
 */
async function alternate(
  contenders: Contender[],
  key: keyof Measures,
  unit: string,
  round: (c: Contender, i: number) => Promise<number>,
  /** Before each round: flush dirty pages (pushes wait for writeback too). */
  prepare: () => unknown = settle,
): Promise<void> {
  const samples = new Map<Contender, number[]>(contenders.map((c) => [c, []]));
  for (let i = 0; i < ROUNDS; i++) {
    for (const c of contenders) {
      await prepare();
      samples.get(c)!.push(await round(c, i));
    }
  }
  for (const c of contenders) {
    const values = samples.get(c)!;
    c.measures[key] = median(values);
    log(`[${c.name}] ${key}: ${values.map((v) => v.toFixed(0)).join(", ")} ${unit}`);
  }
}

/**
 * Manifest GETs by tag (wrk) and blob HEADs (ab) of bench/small, 32 connections each, and the
 * server's peak RSS under the manifest load.
 */
async function requestRates(name: string, server: ServerProcess, layer: string, scriptDir: string) {
  let manifest: Awaited<ReturnType<typeof wrk>> | undefined;
  const rssMiB = await peakRssDuring(server.child.pid ?? 0, async () => {
    manifest = await wrk(`${server.url}/v2/bench/small/manifests/latest`, { connections: 32, seconds: SECONDS, headers: { Accept: MANIFEST_ACCEPT }, scriptDir });
  });
  log(`[${name}] manifest GET by tag ${manifest!.rps.toFixed(0)} req/s, p99 ${manifest!.p99ms} ms, peak RSS ${rssMiB.toFixed(0)} MiB`);
  const head = await abHead(`${server.url}/v2/bench/small/blobs/${layer}`, { connections: 32, seconds: SECONDS });
  log(`[${name}] blob HEAD ${head.rps.toFixed(0)} req/s, p99 ${head.p99ms} ms`);
  return { manifest: manifest!, head, rssMiB };
}

/**
 * What the access log costs: the same store served by a second lain-registry with
 * log.accesslog.disabled, measured like the first.
 */
async function accessLogCost(root: string, layer: string, work: string): Promise<{ manifestRps: number; headRps: number }> {
  const config = join(work, "lain-quiet.yml");
  await writeFile(config, `version: 0.1\nlog: {level: info, accesslog: {disabled: true}}\nstorage:\n  filesystem: {rootdirectory: ${root}}\nhttp:\n  secret: bench\n`);
  const quiet = await startLainProcess(config, await freePort());
  try {
    settle();
    const rates = await requestRates("lain-registry, access log off", quiet, layer, work);
    return { manifestRps: rates.manifest.rps, headRps: rates.head.rps };
  } finally {
    await quiet.stop();
  }
}

interface Rates {
  manifestRps: number;
  manifestP99ms: number;
  headRps: number;
  headP99ms: number;
}

/**
 * The same request rates with storage.cache.blobdescriptor: inmemory on both registries (the
 * LAIN README's S3 example has it), on the stores measured above. lain's cache vouches only once
 * its removal fence has been quiet for quietMs, so the measure waits that long first.
 */
async function withDescriptorCache(lainRoot: string, distributionRoot: string, layer: string, work: string): Promise<{ lain: Rates; distribution: Rates }> {
  const config = join(work, "lain-cached.yml");
  const cache = "  cache: {blobdescriptor: inmemory}";
  await writeFile(config, `version: 0.1\nlog: {level: info}\nstorage:\n  filesystem: {rootdirectory: ${lainRoot}}\n${cache}\nhttp:\n  secret: bench\n`);
  const lain = await startLainProcess(config, await freePort());
  const distribution = await startDistribution({ storageYaml: `  filesystem: {rootdirectory: ${distributionRoot}}\n${cache}`, secret: "bench", configDir: work });
  try {
    await new Promise((resolve) => setTimeout(resolve, FENCE_TIMING.quietMs + 2 * FENCE_TIMING.pollMs));
    const out: Record<string, Rates> = {};
    for (const [name, server] of [["lain", lain], ["distribution", distribution]] as const) {
      settle();
      const rates = await requestRates(`${name}, descriptor cache on`, server, layer, work);
      out[name] = { manifestRps: rates.manifest.rps, manifestP99ms: rates.manifest.p99ms, headRps: rates.head.rps, headP99ms: rates.head.p99ms };
    }
    return { lain: out.lain!, distribution: out.distribution! };
  } finally {
    await lain.stop();
    await distribution.stop();
  }
}

/** Peak RSS while four pushes of `blob` run at once. */
async function concurrentPushRss(c: Contender, blob: BlobFile): Promise<number> {
  const mib = blob.size / MiB;
  settle();
  const peak = await peakRssDuring(c.server.child.pid ?? 0, () => Promise.all([0, 1, 2, 3].map((i) => pushBlob(c.server.url, `bench/rss${mib}-${i}`, blob))));
  log(`[${c.name}] peak RSS during 4 concurrent ${mib} MiB pushes ${peak.toFixed(0)} MiB`);
  return peak;
}

/**
 * Every measure of lain and distribution; the monolithic push of `floor` (bench/node-floor.ts)
 * alternates with theirs.
 */
async function measureAll(contenders: Contender[], floor: Contender, blob: BlobFile, smallBlob: BlobFile, scriptDir: string): Promise<string> {
  for (const c of contenders) c.measures.idleRssMiB = await rssMiB(c.server.child.pid ?? 0);
  const mib = blob.size / MiB;
  const pushers = [...contenders, floor];
  const cpu = new Map<Contender, number[]>(pushers.map((c) => [c, []]));
  await alternate(
    pushers,
    "pushMiBps",
    "MiB/s",
    async (c, i) => {
      const before = await cpuSeconds(c.server.child.pid ?? 0);
      const seconds = await pushBlob(c.server.url, `bench/push${i}`, blob);
      cpu.get(c)!.push(((await cpuSeconds(c.server.child.pid ?? 0)) - before) / (mib / 1024));
      return mib / seconds;
    },
    () => settleWriteback([blob.path]),
  );
  for (const c of pushers) c.measures.pushCpuSecondsPerGiB = median(cpu.get(c)!);
  const chunks = await splitBlob(blob, CHUNKS);
  await alternate(contenders, "chunkedPushMiBps", "MiB/s", async (c, i) => mib / (await pushBlobChunked(c.server.url, `bench/chunked${i}`, blob, chunks)), () => settleWriteback(chunks));
  await alternate(contenders, "pullMiBps", "MiB/s", async (c) => mib / (await pullBlob(c.server.url, "bench/push0", blob)));
  await alternate(contenders, "pull4MiBps", "MiB/s", async (c) => {
    const t0 = process.hrtime.bigint();
    await Promise.all([0, 1, 2, 3].map(() => pullBlob(c.server.url, "bench/push0", blob)));
    return (4 * mib) / (Number(process.hrtime.bigint() - t0) / 1e9);
  });

  const image = randomImage({ layers: 3, layerSize: 1024 });
  for (const c of contenders) await pushImage(c.server.url, "bench/small", "latest", image);
  for (const c of contenders) {
    settle();
    const rates = await requestRates(c.name, c.server, image.layers[0]!.digest, scriptDir);
    c.measures.manifestRssMiB = rates.rssMiB;
    c.measures.manifestRps = rates.manifest.rps;
    c.measures.manifestP99ms = rates.manifest.p99ms;
    c.measures.headRps = rates.head.rps;
    c.measures.headP99ms = rates.head.p99ms;
  }

  for (const c of contenders) {
    c.measures.push64RssMiB = await concurrentPushRss(c, smallBlob);
    c.measures.peakRssMiB = await concurrentPushRss(c, blob);
  }
  return image.layers[0]!.digest;
}

interface S3Measures {
  pushMiBps: number;
  pullMiBps: number;
  pullRedirectMiBps: number;
  peakRssMiB: number;
}

/**
 * The S3 path: both registries on one bucket of a throw-away Ceph RGW, pushing and pulling the
 * same blob; pulls once through the registry (redirect off) and once by redirect to the store.
 */
async function measureS3(blob: BlobFile, work: string): Promise<Record<string, S3Measures> | undefined> {
  if (!RGW_TOOLS.every(hasTool)) {
    log("Ceph RGW is not installed: skipping the S3 measures");
    return undefined;
  }
  const rgw = await startRgw({ memoryBytes: 10 * 1024 ** 3 });
  const started: ServerProcess[] = [];
  try {
    const bucket = await createBucket(rgw, "bench");
    const section = (redirect: boolean) => `${s3StorageYaml(rgw, bucket, { chunksize: 10 * MiB })}${redirect ? "" : "\n  redirect:\n    disable: true"}`;
    const startPair = async (redirect: boolean): Promise<Contender[]> => {
      const config = join(work, `lain-s3-${redirect}.yml`);
      await writeFile(config, `version: 0.1\nlog: {level: error}\nhttp:\n  secret: bench\nstorage:\n${section(redirect)}\n`);
      const lain = await startLainProcess(config, await freePort());
      await mkdir(join(work, `d-${redirect}`), { recursive: true });
      const distribution = await startDistribution({ storageYaml: section(redirect), secret: "bench", configDir: join(work, `d-${redirect}`) });
      started.push(lain, distribution);
      return [
        { name: `lain-registry s3 redirect=${redirect}`, server: lain, measures: {} },
        { name: `distribution s3 redirect=${redirect}`, server: distribution, measures: {} },
      ];
    };
    const mib = blob.size / MiB;
    const direct = await startPair(false);
    const samples = { push: [[], []] as number[][], pull: [[], []] as number[][], redirect: [[], []] as number[][], rss: [0, 0] };
    for (let i = 0; i < S3_ROUNDS; i++) {
      for (const [j, c] of direct.entries()) samples.push[j]!.push(mib / (await pushBlob(c.server.url, `bench/s3-${j}-${i}`, blob)));
    }
    for (let i = 0; i < S3_ROUNDS; i++) {
      for (const [j, c] of direct.entries()) samples.pull[j]!.push(mib / (await pullBlob(c.server.url, `bench/s3-${j}-0`, blob)));
    }
    for (const [j, c] of direct.entries()) {
      samples.rss[j] = await peakRssDuring(c.server.child.pid ?? 0, () => pushBlob(c.server.url, `bench/s3-rss-${j}`, blob));
    }
    const redirecting = await startPair(true);
    for (let i = 0; i < S3_ROUNDS; i++) {
      for (const [j, c] of redirecting.entries()) samples.redirect[j]!.push(mib / (await pullBlob(c.server.url, `bench/s3-${j}-0`, blob)));
    }
    const out: Record<string, S3Measures> = {};
    for (const [j, name] of ["lain", "distribution"].entries()) {
      out[name] = {
        pushMiBps: median(samples.push[j]!),
        pullMiBps: median(samples.pull[j]!),
        pullRedirectMiBps: median(samples.redirect[j]!),
        peakRssMiB: samples.rss[j]!,
      };
      log(`[${name} s3] push ${samples.push[j]!.map((v) => v.toFixed(0)).join(", ")}; pull ${samples.pull[j]!.map((v) => v.toFixed(0)).join(", ")}; pull via redirect ${samples.redirect[j]!.map((v) => v.toFixed(0)).join(", ")} MiB/s; peak RSS ${samples.rss[j]!.toFixed(0)} MiB`);
    }
    return out;
  } finally {
    for (const s of started) await s.stop();
    await rgw.stop();
  }
}

/** `<day>.json`, or `<day>b.json`, `<day>c.json`...: a later run of the same day never replaces an earlier one. */
async function freeResultsFile(dir: string, day: string): Promise<string> {
  const taken = new Set(await readdir(dir));
  for (const suffix of ["", ..."bcdefghijklmnopqrstuvwxyz"]) {
    if (!taken.has(`${day}${suffix}.json`)) return join(dir, `${day}${suffix}.json`);
  }
  throw new Error(`bench/results already holds 26 runs of ${day}`);
}

/** The mirror's part: lain as a pull-through mirror of the distribution instance, against distribution's proxy. */
async function mirrorPart(distribution: ServerProcess, lain: ServerProcess, blob: BlobFile, work: string, lines: string[]): Promise<MirrorMeasures> {
  // Blobs of the same size that only the peer holds, for the mirror's pulls of different blobs at once.
  const distinct: BlobFile[] = [];
  for (let i = 0; i < MIRROR_CONCURRENT; i++) {
    const other = await makeBlobFile(join(work, `blob-distinct-${i}`), BLOB_MIB * MiB);
    await pushBlob(distribution.url, "bench/push0", other);
    distinct.push(other);
  }
  const mirror = await measureMirror(distribution, lain, "bench/push0", blob, distinct, work, log);
  const mirrorRows: Array<[string, number, number, string]> = [
    ["mirror cold pull vs the peer direct", mirror.coldMiBps, mirror.peerMiBps, "≥ 0.4"],
    ["mirror cold pull vs distribution proxy", mirror.coldMiBps, mirror.distributionColdMiBps, "≥ 1.5"],
    ["4 concurrent cold vs distribution", mirror.concurrentMiBps, mirror.distributionConcurrentMiBps, "≥ 1.5"],
    ["mirror warm pull vs a local pull", mirror.warmMiBps, mirror.localMiBps, "≥ 0.95"],
  ];
  lines.push(`${"mirror (MiB/s)".padEnd(36)}${"lain".padStart(10)}${"other".padStart(14)}${"ratio".padStart(8)}`);
  for (const [label, a, b, target] of mirrorRows) {
    lines.push(`${label.padEnd(36)}${a.toFixed(1).padStart(10)}${b.toFixed(1).padStart(14)}${(a / b).toFixed(2).padStart(8)}  ${target}`);
  }
  lines.push(
    `4 concurrent cold pulls of one blob: lain ${mirror.concurrentUpstreamGets} upstream GET(s) (target 1), distribution ${mirror.distributionConcurrentUpstreamGets}; mirror peak RSS ${mirror.concurrentPeakRssMiB.toFixed(0)} MiB (target ≤ 150)`,
    `mirror RSS: idle ${mirror.idleRssMiB.toFixed(1)} MiB (target ≤ 64; distribution's proxy ${mirror.distributionIdleRssMiB.toFixed(1)}), ` +
      `peak during ${MIRROR_CONCURRENT} concurrent cold pulls of different ${BLOB_MIB} MiB blobs ${mirror.distinctPeakRssMiB.toFixed(0)} MiB (target ≤ 112; distribution's proxy ${mirror.distributionDistinctPeakRssMiB.toFixed(0)})`,
    `cold blob GET, time to first byte: lain mirror ${mirror.coldFirstByteMs.toFixed(1)} ms, the peer direct ${mirror.peerFirstByteMs.toFixed(1)} ms (target ≤ peer + 50), distribution proxy ${mirror.distributionColdFirstByteMs.toFixed(1)} ms`,
  );
  return mirror;
}

async function main(): Promise<void> {
  const work = await tempDir("lain-bench-");
  let lain: ServerProcess | undefined;
  let distribution: ServerProcess | undefined;
  let floorServer: ServerProcess | undefined;
  try {
    process.stderr.write(`generating a ${BLOB_MIB} MiB random blob\n`);
    const blob = await makeBlobFile(join(work, "blob"), BLOB_MIB * MiB);
    const smallBlob = await makeBlobFile(join(work, "blob-small"), Math.min(64, BLOB_MIB) * MiB);
    const loopback = await loopbackMiBps(BLOB_MIB * MiB);
    process.stderr.write(`loopback carries ${loopback.toFixed(0)} MiB/s\n`);
    const ddRuns: number[] = [];
    for (let i = 0; i < 3; i++) ddRuns.push(await ddFdatasyncMiBps(blob, work));
    const dd = median(ddRuns);
    process.stderr.write(`dd conv=fdatasync writes ${ddRuns.map((v) => v.toFixed(0)).join(", ")} MiB/s\n`);

    const config = join(work, "lain.yml");
    // The operational default: an access line per request (distribution writes its access log too).
    await writeFile(config, `version: 0.1\nlog: {level: info}\nstorage:\n  filesystem: {rootdirectory: ${join(work, "lain")}}\nhttp:\n  secret: bench\n`);
    lain = await startLainProcess(config, await freePort());
    await mkdir(join(work, "distribution"));
    distribution = await startDistribution({ root: join(work, "distribution"), secret: "bench", configDir: work });
    floorServer = await startNodeFloor(join(work, "floor"));

    const contenders: Contender[] = [
      { name: "lain-registry", server: lain, measures: {} },
      { name: "distribution", server: distribution, measures: {} },
    ];
    const floor: Contender = { name: "node floor", server: floorServer, measures: {} };
    const layer = await measureAll(contenders, floor, blob, smallBlob, work);
    await floorServer.stop();
    const quiet = await accessLogCost(join(work, "lain"), layer, work);
    const cached = await withDescriptorCache(join(work, "lain"), join(work, "distribution"), layer, work);
    const ours = contenders[0]!.measures as Measures;
    const theirs = contenders[1]!.measures as Measures;
    const floorPush = floor.measures as Pick<Measures, "pushMiBps" | "pushCpuSecondsPerGiB">;
    const ratio = (key: keyof Measures) => ours[key] / theirs[key];
    const rows: Array<[string, keyof Measures, string]> = [
      [`push ${BLOB_MIB} MiB (MiB/s)`, "pushMiBps", "≥ 2.5"],
      [`chunked push, ${CHUNKS} PATCHes (MiB/s)`, "chunkedPushMiBps", "≥ 2.5"],
      // Half of lain's 3.1 s before issue 20 (0.77 s of CPU per 256 MiB).
      ["server CPU per pushed GiB (s)", "pushCpuSecondsPerGiB", "lain ≤ 1.55"],
      ["pull 256 MiB (MiB/s)", "pullMiBps", "≥ 1.2"],
      ["4 concurrent pulls (MiB/s)", "pull4MiBps", "≥ 1.2"],
      ["manifest GET by tag, c=32 (req/s)", "manifestRps", "≥ 5"],
      ["manifest GET p99 (ms)", "manifestP99ms", "< 1"],
      ["blob HEAD, c=32 (req/s)", "headRps", "≥ 5"],
      ["blob HEAD p99 (ms)", "headP99ms", "< 1"],
      ["RSS idle (MiB)", "idleRssMiB", "lain ≤ 64"],
      ["peak RSS, manifest GET load (MiB)", "manifestRssMiB", "lain ≤ 128"],
      [`peak RSS, 4 pushes of ${smallBlob.size / MiB} MiB (MiB)`, "push64RssMiB", "lain ≤ 112"],
      [`peak RSS, 4 pushes of ${BLOB_MIB} MiB (MiB)`, "peakRssMiB", "lain ≤ 112"],
    ];
    const lines = [
      `${"measure".padEnd(36)}${"lain".padStart(10)}${"distribution".padStart(14)}${"ratio".padStart(8)}  target`,
      ...rows.map(([label, key, target]) =>
        `${label.padEnd(36)}${ours[key].toFixed(1).padStart(10)}${theirs[key].toFixed(1).padStart(14)}${ratio(key).toFixed(2).padStart(8)}  ${target}`,
      ),
      `pull vs loopback (${loopback.toFixed(0)} MiB/s): ${((ours.pullMiBps / loopback) * 100).toFixed(0)}% (target ≥ 80%)`,
      `push vs dd conv=fdatasync of the same ${BLOB_MIB} MiB (${dd.toFixed(0)} MiB/s): lain ${((ours.pushMiBps / dd) * 100).toFixed(0)}%, chunked ${((ours.chunkedPushMiBps / dd) * 100).toFixed(0)}%, ` +
        `distribution ${((theirs.pushMiBps / dd) * 100).toFixed(0)}% (target ≥ 50%)`,
      `push floor, bare node:http with lain's hash and writer (bench/node-floor.ts): ${floorPush.pushMiBps.toFixed(0)} MiB/s = ${(floorPush.pushMiBps / theirs.pushMiBps).toFixed(2)}x distribution, ` +
        `${floorPush.pushCpuSecondsPerGiB.toFixed(2)} CPU s per GiB; lain's push ${((ours.pushMiBps / floorPush.pushMiBps) * 100).toFixed(0)}% of it, ` +
        `${(ours.pushCpuSecondsPerGiB / floorPush.pushCpuSecondsPerGiB).toFixed(2)}x its CPU`,
      `access log on vs off: manifest GET ${ours.manifestRps.toFixed(0)} vs ${quiet.manifestRps.toFixed(0)} req/s (${(ours.manifestRps / quiet.manifestRps).toFixed(2)}), ` +
        `blob HEAD ${ours.headRps.toFixed(0)} vs ${quiet.headRps.toFixed(0)} req/s (${(ours.headRps / quiet.headRps).toFixed(2)})`,
      `descriptor cache on, both: manifest GET ${cached.lain.manifestRps.toFixed(0)} vs ${cached.distribution.manifestRps.toFixed(0)} req/s (${(cached.lain.manifestRps / cached.distribution.manifestRps).toFixed(2)}, target ≥ 3), ` +
        `p99 ${cached.lain.manifestP99ms} vs ${cached.distribution.manifestP99ms} ms; blob HEAD ${cached.lain.headRps.toFixed(0)} vs ${cached.distribution.headRps.toFixed(0)} req/s (${(cached.lain.headRps / cached.distribution.headRps).toFixed(2)}, target ≥ 3), ` +
        `p99 ${cached.lain.headP99ms} vs ${cached.distribution.headP99ms} ms`,
      `descriptor cache on vs off, lain: manifest GET ${(cached.lain.manifestRps / ours.manifestRps).toFixed(2)}, blob HEAD ${(cached.lain.headRps / ours.headRps).toFixed(2)}; ` +
        `distribution: ${(cached.distribution.manifestRps / theirs.manifestRps).toFixed(2)}, ${(cached.distribution.headRps / theirs.headRps).toFixed(2)}`,
    ];
    // Blobs of the same size that only the peer holds, for the mirror's pulls of different blobs at once.
    const mirror = chosen("mirror") ? await mirrorPart(distribution, lain, blob, work, lines) : null;
    const ranges = chosen("ranges") ? await measureLazyRanges(work, log) : null;
    if (ranges) {
      const { tailFirstByteMs: first, tailRangeMs: tail, scatteredMs: scattered } = ranges;
      lines.push(
        `lazy pull ranges of a cold ${ranges.blobMiB} MiB blob, the primary behind a ${ranges.linkMbit} Mbit/s link: first byte of 1 MiB at 126 MiB: direct ${first.direct.toFixed(1)} ms, ` +
          `lain mirror ${first.lain.toFixed(1)} ms (direct + ${(first.lain - first.direct).toFixed(1)} ms, target ≤ + 20), distribution proxy ${first.distribution.toFixed(0)} ms`,
        `  the whole 1 MiB: direct ${tail.direct.toFixed(0)} ms, ` +
          `lain mirror ${tail.lain.toFixed(0)} ms (${(tail.lain / tail.direct).toFixed(2)}x direct), distribution proxy ${tail.distribution.toFixed(0)} ms (${(tail.distribution / tail.direct).toFixed(2)}x direct, ` +
          `answered ${ranges.statuses.distribution}); lain ${(tail.distribution / tail.lain).toFixed(1)}x faster`,
        `  16 scattered 64 KiB ranges, one after the other: direct ${scattered.direct.toFixed(0)} ms, lain ${scattered.lain.toFixed(0)} ms (${(scattered.lain / scattered.direct).toFixed(2)}x), ` +
          `distribution ${scattered.distribution.toFixed(0)} ms (${(scattered.distribution / scattered.direct).toFixed(2)}x)`,
      );
    }
    const lazyPull = chosen("ranges") ? ((await measureLazyPull(work, log)) ?? null) : null;
    if (lazyPull) {
      const l = lazyPull;
      lines.push(
        `lazy pull of an eStargz image (a ${l.largeMiB} MiB file in its layer; rpull, then a container reading a small file), the primary behind a ${l.linkMbit} Mbit/s link: ` +
          `through a cold lain mirror ${l.lazyMirrorSeconds.toFixed(2)} s vs from the primary ${l.lazyDirectSeconds.toFixed(2)} s = ${(l.lazyMirrorSeconds / l.lazyDirectSeconds).toFixed(2)}x (target ≤ 1.2); ` +
          `a full pull of its gzip twin from the primary ${l.fullGzipSeconds.toFixed(2)} s`,
      );
    }
    const fleet = chosen("fleet") ? await measureFleet(work, log) : null;
    if (fleet) {
      lines.push(
        `fleet rollout, ${fleet.mirrors} mirrors pulling one cold ${fleet.blobMiB} MiB blob behind a ${fleet.linkMiBps} MiB/s link: siblings on ${fleet.rolloutSeconds.toFixed(2)} s vs off ${fleet.rolloutSecondsWithoutSiblings.toFixed(2)} s = ` +
          `${(fleet.rolloutSecondsWithoutSiblings / fleet.rolloutSeconds).toFixed(2)}x faster; vs one mirror alone ${fleet.singleSeconds.toFixed(2)} s: ${(fleet.rolloutSeconds / fleet.singleSeconds).toFixed(2)} (target ≤ 1.6); ` +
          `primary egress ${fleet.primaryEgressBlobs.toFixed(2)} vs ${fleet.primaryEgressBlobsWithoutSiblings.toFixed(2)} blobs (target 1)`,
      );
    }
    const cluster = chosen("cluster") ? ((await measureFleetCluster(work, log)) ?? null) : null;
    if (cluster) {
      lines.push(`fleet on a cluster of hosts (every NIC ${cluster.rateMbit} Mbit/s each way), a cold ${cluster.blobMiB} MiB blob; one node alone ${cluster.singleSeconds.toFixed(2)} s:`);
      for (const row of cluster.rows) {
        lines.push(
          `  ${clusterRowName(row)}: ${row.seconds.toFixed(2)} s = ${row.timesOnePull.toFixed(2)}x one pull` +
            `${row.fastTimesOnePull === undefined ? "" : ` (the other nodes done at ${row.fastTimesOnePull.toFixed(2)}x)`}; primary egress ${row.primaryCopies.toFixed(2)} copies, ` +
            `largest node egress ${row.largestNodeCopies.toFixed(2)} copies; wrong bytes in ${row.wrong} pulls`,
        );
      }
    }
    const writeback = chosen("writeback") ? await measureWriteback(work, log) : null;
    if (writeback) {
      const w = writeback;
      lines.push(
        `standby write-back, ${w.images} pushes of ${w.imageKiB} KiB images a round, with the same htpasswd: a standby whose primary is down ${w.standbyImagesPerSecond.toFixed(1)} images/s, ` +
          `the same lain without a proxy ${w.plainImagesPerSecond.toFixed(1)} (${(w.standbyImagesPerSecond / w.plainImagesPerSecond).toFixed(2)}; the journal and the primary checks ${w.journalMsPerImage.toFixed(1)} ms per image), ` +
          `distribution ${w.distributionImagesPerSecond.toFixed(1)} (standby / distribution ${(w.standbyImagesPerSecond / w.distributionImagesPerSecond).toFixed(2)}); ` +
          `replay of ${w.replayedImages} images to the returning primary ${w.replaySeconds.toFixed(2)} s = ${(w.replayedImages / w.replaySeconds).toFixed(1)} images/s (${(w.replayedImages / w.replaySeconds / w.plainImagesPerSecond).toFixed(2)}x the client's own pushes)`,
      );
    }
    const gc = chosen("gc") ? await measureGc(work, log) : undefined;
    const gcS3 = chosen("gc") ? await measureGcS3(work, log) : undefined;
    for (const [where, measured] of [["filesystem", gc], ["S3", gcS3]] as const) {
      if (!measured) continue;
      const g = measured;
      lines.push(
        `garbage-collect on ${where}, ${g.repositories} repositories / ${g.blobs} blobs: lain ${g.lainSeconds.toFixed(2)} s while serving pushes vs distribution ${g.distributionSeconds.toFixed(2)} s with nothing serving = ${(g.distributionSeconds / g.lainSeconds).toFixed(2)}x speed; ` +
        `freed ${g.lainFreed} vs ${g.distributionFreed} blobs (same but for the images pushed again: ${g.sameResult}); pushes during lain's: ${g.pushesAcknowledged} acknowledged, ${g.pushesRefused} refused (target 0), ` +
        `${g.repushedIntact} of ${g.repushed} deleted images pushed again pull back whole; peak RSS ${g.lainPeakRssMiB.toFixed(0)} vs ${g.distributionPeakRssMiB.toFixed(0)} MiB`,
      );
    }
    const lifecycle = chosen("lifecycle") ? await measureLifecycle(work, log) : null;
    if (lifecycle) {
      const l = lifecycle;
      lines.push(
        `scrub of a ${l.scrubGiB} GiB store: ${l.scrubMiBps.toFixed(0)} MiB/s, sha256sum of the same files ${l.sha256sumMiBps.toFixed(0)} MiB/s (${(l.scrubMiBps / l.sha256sumMiBps).toFixed(2)}); ` +
          `a 256 MiB pull beside a scrub at 50 MiB/s ${l.pullMiBpsBesideScrub.toFixed(0)} vs alone ${l.pullMiBpsAlone.toFixed(0)} MiB/s (${(l.pullMiBpsBesideScrub / l.pullMiBpsAlone).toFixed(2)}, target ≥ 0.90)`,
        `retention over ${l.retentionRepositories} repositories of 5 tags (keep the newest 3): dry run ${l.retentionDryRunSeconds.toFixed(1)} s, run ${l.retentionRunSeconds.toFixed(1)} s (${l.retentionRemovedTags} tags removed); ` +
          `manifest GET with pull times recorded ${l.manifestRpsTracked.toFixed(0)} vs not ${l.manifestRpsUntracked.toFixed(0)} req/s (${(l.manifestRpsTracked / l.manifestRpsUntracked).toFixed(2)})`,
      );
    }
    const gcMemory = chosen("gc-memory") ? { filesystem: await measureGcMemory(work, log), s3: (await measureGcMemoryS3(work, log)) ?? null } : null;
    for (const [where, m] of Object.entries(gcMemory ?? {})) {
      if (!m) continue;
      const [a, b] = m.points;
      lines.push(
        `garbage-collect --dry-run memory on ${where}: peak RSS at ${a.blobs} / ${b.blobs} blobs lain ${a.lainPeakRssMiB.toFixed(0)} / ${b.lainPeakRssMiB.toFixed(0)} MiB, ` +
          `distribution ${a.distributionPeakRssMiB.toFixed(0)} / ${b.distributionPeakRssMiB.toFixed(0)} MiB: lain ${m.lainKiBPerBlob.toFixed(2)} KiB per blob (target ≤ 1), distribution ${m.distributionKiBPerBlob.toFixed(2)}`,
      );
    }
    const s3 = chosen("s3") ? await measureS3(blob, work) : undefined;
    if (s3?.lain && s3.distribution) {
      const s3Rows: Array<[string, keyof S3Measures]> = [
        ["S3 push 256 MiB (MiB/s)", "pushMiBps"],
        ["S3 pull, redirect off (MiB/s)", "pullMiBps"],
        ["S3 pull, redirect on (MiB/s)", "pullRedirectMiBps"],
        ["S3 peak RSS during a push (MiB)", "peakRssMiB"],
      ];
      for (const [label, key] of s3Rows) {
        lines.push(`${label.padEnd(36)}${s3.lain[key].toFixed(1).padStart(10)}${s3.distribution[key].toFixed(1).padStart(14)}${(s3.lain[key] / s3.distribution[key]).toFixed(2).padStart(8)}  ${key === "peakRssMiB" ? "flat" : "≥ 1.0"}`);
      }
    }
    const soak = chosen("soak") ? await measureSoaks(work, SOAK_SECONDS, log) : null;
    if (soak) {
      const [sl, sd] = [soak.lain, soak.distribution];
      lines.push(
        `soak, ${SOAK_SECONDS} s of manifest GETs at c=16, 2 pushers of 1 MiB images and a puller (bench/soak.ts): lain RSS ${sl.firstThirdMiB.toFixed(0)} MiB at most in the first third, ` +
          `${sl.lastThirdMiB.toFixed(0)} in the last (target ≤ ${(sl.firstThirdMiB * 1.1).toFixed(0)}), ${sl.maxMiB.toFixed(0)} at most (target ≤ 160; distribution ${sd.maxMiB.toFixed(0)}); ` +
          `pushes ${sl.pushes} vs ${sd.pushes} (${(sl.pushes / sd.pushes).toFixed(2)}), pulls ${sl.pulls} vs ${sd.pulls} (${(sl.pulls / sd.pulls).toFixed(2)}), ` +
          `manifest GET ${sl.manifestRps.toFixed(0)} vs ${sd.manifestRps.toFixed(0)} req/s (${(sl.manifestRps / sd.manifestRps).toFixed(2)}); errors ${sl.errors} vs ${sd.errors}; access-log lines dropped ${sl.droppedLogLines ?? 0}`,
      );
    }
    process.stdout.write(`\n${lines.join("\n")}\n`);
    const unmeasured = PARTS.filter((part) => !chosen(part));
    if (unmeasured.length > 0) process.stdout.write(`not measured this run (BENCH_PARTS): ${unmeasured.join(", ")}\n`);
    const distributionVersion = execFileSync("docker-registry", ["--version"], { encoding: "utf8" }).trim();
    const results = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, distribution: distributionVersion },
      blobMiB: BLOB_MIB,
      seconds: SECONDS,
      parts: CHOSEN,
      loopbackMiBps: loopback,
      ddFdatasyncMiBps: dd,
      nodeFloor: floorPush,
      lain: ours,
      lainAccessLogOff: quiet,
      descriptorCache: cached,
      distribution: theirs,
      ratios: Object.fromEntries(rows.map(([, key]) => [key, ratio(key)])),
      mirror,
      ranges,
      lazyPull,
      fleet,
      cluster,
      writeback,
      lifecycle,
      gc,
      gcS3: gcS3 ?? null,
      gcMemory,
      s3: s3 ?? null,
      soak,
    };
    const dir = new URL("./results/", import.meta.url).pathname;
    await mkdir(dir, { recursive: true });
    const file = await freeResultsFile(dir, results.date.slice(0, 10));
    await writeFile(file, `${JSON.stringify(results, null, 2)}\n`, { flag: "wx" });
    process.stdout.write(`\nwritten to ${file}\n`);
  } finally {
    await lain?.stop();
    await distribution?.stop();
    await floorServer?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
