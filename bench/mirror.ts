/**
 * The mirror measures: lain-registry pulling through from a peer (Debian's docker-registry),
 * against the same peer pulled directly and distribution in proxy mode in front of it.
 */
import { mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CountingProxy } from "../test/helpers/counting-proxy.js";
import { startDistribution } from "../test/helpers/distribution.js";
import { blobFile } from "../test/helpers/store.js";
import { freePort, startLainProcess, type ServerProcess } from "../test/helpers/process.js";
import { median, MiB, peakRssDuring, pullBlob, pullBlobTimes, rssMiB, settle, type BlobFile } from "./load.js";

const ROUNDS = 3;
export const MIRROR_CONCURRENT = 4;

export interface MirrorMeasures {
  /** Straight from the peer. */
  peerMiBps: number;
  /** Cold (nothing cached) through lain-registry's mirror. */
  coldMiBps: number;
  /** Cold through distribution in proxy mode. */
  distributionColdMiBps: number;
  /** Cached in the mirror, against a pull from a lain-registry that stores the blob itself. */
  warmMiBps: number;
  localMiBps: number;
  /** 4 concurrent cold pulls of one blob, all bytes over the time of the last: lain, and distribution's proxy. */
  concurrentMiBps: number;
  distributionConcurrentMiBps: number;
  /** Upstream GETs the 4 pulls made: lain's, distribution's. */
  concurrentUpstreamGets: number;
  distributionConcurrentUpstreamGets: number;
  /** The mirror's peak RSS during them. */
  concurrentPeakRssMiB: number;
  /** Peak RSS during 4 concurrent cold pulls of 4 different blobs: lain's mirror, distribution's proxy. */
  distinctPeakRssMiB: number;
  distributionDistinctPeakRssMiB: number;
  /** Idle RSS of a mirror just started: lain's, distribution's proxy. */
  idleRssMiB: number;
  distributionIdleRssMiB: number;
  /** Time to the first byte of a blob GET, ms: from the peer, from the mirror cold, from distribution's proxy cold. */
  peerFirstByteMs: number;
  coldFirstByteMs: number;
  distributionColdFirstByteMs: number;
}

const exists = (path: string) => stat(path).then(() => true, () => false);

/** Waits (bounded) until a registry has stored the blob, then until the disk has it: each pull starts on a quiet machine. */
async function storedAndSettled(data: string): Promise<void> {
  for (let i = 0; i < 600 && !(await exists(data)); i++) await new Promise((r) => setTimeout(r, 100));
  settle();
}

interface Proxying extends ServerProcess {
  /** Where it stores. */
  store: string;
  /** Resolves once it has stored the blob and the disk has written it. */
  settled(): Promise<void>;
}

/**
 * `peer` and `local` both hold `repo`'s blob; every round gets proxies with empty stores. Each
 * cold pull starts after the previous one's caching is over (distribution's proxy caches with a
 * second fetch after answering) and the disk has written it back: whoever pulls second would
 * otherwise pay for the other's writes.
 */
export async function measureMirror(
  peer: ServerProcess,
  local: ServerProcess,
  repo: string,
  blob: BlobFile,
  /** MIRROR_CONCURRENT blobs the peer holds in `repo` besides `blob`, all of its size. */
  distinct: BlobFile[],
  work: string,
  log: (m: string) => void,
): Promise<MirrorMeasures> {
  const mib = blob.size / MiB;
  let round = 0;
  const startMirror = async (remoteurl: string): Promise<Proxying> => {
    const dir = join(work, `mirror-${++round}`);
    await mkdir(dir, { recursive: true });
    const config = join(dir, "lain.yml");
    await writeFile(config, `version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: ${join(dir, "store")}}\nhttp:\n  secret: bench\nproxy:\n  remoteurl: ${remoteurl}\n`);
    const server = await startLainProcess(config, await freePort());
    return Object.assign(server, { store: join(dir, "store"), settled: () => storedAndSettled(blobFile(join(dir, "store"), blob.digest)) });
  };
  const startDistributionProxy = async (remoteurl: string): Promise<Proxying> => {
    const dir = join(work, `dproxy-${++round}`);
    await mkdir(join(dir, "store"), { recursive: true });
    const server = await startDistribution({ root: join(dir, "store"), secret: "bench", configDir: dir, extraYaml: `proxy:\n  remoteurl: ${remoteurl}` });
    return Object.assign(server, { store: join(dir, "store"), settled: () => storedAndSettled(blobFile(join(dir, "store"), blob.digest)) });
  };
  const idle = { lain: [] as number[], distribution: [] as number[] };
  const samples = { peer: [] as number[], cold: [] as number[], distribution: [] as number[], warm: [] as number[], local: [] as number[] };
  const firstByteMs = { peer: [] as number[], cold: [] as number[], distribution: [] as number[] };
  const timed = async (server: ServerProcess, sample: keyof typeof samples) => {
    settle();
    const times = await pullBlobTimes(server.url, repo, blob);
    samples[sample].push(mib / times.seconds);
    if (sample in firstByteMs) firstByteMs[sample as keyof typeof firstByteMs].push(times.firstByteSeconds * 1000);
  };

  for (let i = 0; i < ROUNDS; i++) {
    await timed(peer, "peer");
    const mirror = await startMirror(peer.url);
    const proxyMode = await startDistributionProxy(peer.url);
    try {
      idle.lain.push(await rssMiB(mirror.child.pid ?? 0));
      idle.distribution.push(await rssMiB(proxyMode.child.pid ?? 0));
      // Who goes first alternates, so neither always meets a machine the other has warmed.
      for (const contender of i % 2 === 0 ? [mirror, proxyMode] : [proxyMode, mirror]) {
        await timed(contender, contender === mirror ? "cold" : "distribution");
        await contender.settled();
      }
      await timed(mirror, "warm");
      await timed(local, "local");
    } finally {
      await mirror.stop();
      await proxyMode.stop();
    }
  }
  for (const [name, values] of Object.entries(samples)) log(`[mirror] ${name}: ${values.map((v) => v.toFixed(0)).join(", ")} MiB/s`);
  for (const [name, values] of Object.entries(firstByteMs)) log(`[mirror] ${name} first byte: ${values.map((v) => v.toFixed(1)).join(", ")} ms`);

  const concurrently = async (server: Proxying, counter: CountingProxy) => {
    settle();
    const started = performance.now();
    const peak = await peakRssDuring(server.child.pid ?? 0, () => Promise.all(Array.from({ length: MIRROR_CONCURRENT }, () => pullBlob(server.url, repo, blob))));
    const seconds = (performance.now() - started) / 1000;
    await server.settled();
    return { MiBps: (MIRROR_CONCURRENT * mib) / seconds, gets: counter.count("GET", new RegExp(`/blobs/${blob.digest}`)), peak };
  };
  /** Each blob of `distinct` pulled at once from a fresh `server`, whose store then holds them all. */
  const distinctly = async (server: ServerProcess, store: string) => {
    settle();
    const peak = await peakRssDuring(server.child.pid ?? 0, () => Promise.all(distinct.map((b) => pullBlob(server.url, repo, b))));
    for (const b of distinct) await storedAndSettled(blobFile(store, b.digest));
    return peak;
  };
  const counters = [await CountingProxy.start(peer.url), await CountingProxy.start(peer.url)] as const;
  const mirror = await startMirror(counters[0].url);
  const proxyMode = await startDistributionProxy(counters[1].url);
  const distinctMirror = await startMirror(peer.url);
  const distinctProxy = await startDistributionProxy(peer.url);
  try {
    const ours = await concurrently(mirror, counters[0]);
    const theirs = await concurrently(proxyMode, counters[1]);
    log(`[mirror] ${MIRROR_CONCURRENT} concurrent cold pulls: lain ${ours.MiBps.toFixed(0)} MiB/s, ${ours.gets} upstream GET(s), peak RSS ${ours.peak.toFixed(0)} MiB; distribution ${theirs.MiBps.toFixed(0)} MiB/s, ${theirs.gets} upstream GET(s)`);
    const distinctPeak = { lain: await distinctly(distinctMirror, distinctMirror.store), distribution: await distinctly(distinctProxy, distinctProxy.store) };
    log(`[mirror] ${distinct.length} concurrent cold pulls of different blobs: peak RSS lain ${distinctPeak.lain.toFixed(0)} MiB, distribution ${distinctPeak.distribution.toFixed(0)} MiB`);
    log(`[mirror] idle RSS: lain ${idle.lain.map((v) => v.toFixed(1)).join(", ")}, distribution ${idle.distribution.map((v) => v.toFixed(1)).join(", ")} MiB`);
    return {
      peerMiBps: median(samples.peer),
      coldMiBps: median(samples.cold),
      distributionColdMiBps: median(samples.distribution),
      warmMiBps: median(samples.warm),
      localMiBps: median(samples.local),
      concurrentMiBps: ours.MiBps,
      distributionConcurrentMiBps: theirs.MiBps,
      concurrentUpstreamGets: ours.gets,
      distributionConcurrentUpstreamGets: theirs.gets,
      concurrentPeakRssMiB: ours.peak,
      distinctPeakRssMiB: distinctPeak.lain,
      distributionDistinctPeakRssMiB: distinctPeak.distribution,
      idleRssMiB: median(idle.lain),
      distributionIdleRssMiB: median(idle.distribution),
      peerFirstByteMs: median(firstByteMs.peer),
      coldFirstByteMs: median(firstByteMs.cold),
      distributionColdFirstByteMs: median(firstByteMs.distribution),
    };
  } finally {
    for (const server of [mirror, proxyMode, distinctMirror, distinctProxy]) await server.stop();
    for (const counter of counters) await counter.close();
  }
}
