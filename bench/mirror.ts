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
import { MiB, peakRssDuring, pullBlob, type BlobFile } from "./load.js";

const ROUNDS = 3;
const CONCURRENT = 8;

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
  /** 8 concurrent cold pulls of one blob: upstream GETs made, and the mirror's peak RSS. */
  concurrentUpstreamGets: number;
  concurrentPeakRssMiB: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** `peer` and `local` both hold `repo`'s blob; every round gets mirrors with empty stores. */
export async function measureMirror(peer: ServerProcess, local: ServerProcess, repo: string, blob: BlobFile, work: string, log: (m: string) => void): Promise<MirrorMeasures> {
  const mib = blob.size / MiB;
  let round = 0;
  const startMirror = async (remoteurl: string): Promise<ServerProcess & { cached(): Promise<void> }> => {
    const dir = join(work, `mirror-${++round}`);
    await mkdir(dir, { recursive: true });
    const config = join(dir, "lain.yml");
    await writeFile(config, `version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: ${join(dir, "store")}}\nhttp:\n  secret: bench\nproxy:\n  remoteurl: ${remoteurl}\n`);
    const server = await startLainProcess(config, await freePort());
    const data = blobFile(join(dir, "store"), blob.digest);
    // The store copies a fetched blob after the transfer; a warm pull starts once it is there.
    const cached = async () => {
      for (let i = 0; i < 600 && !(await stat(data).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
    };
    return Object.assign(server, { cached });
  };
  const startDistributionProxy = async (): Promise<ServerProcess> => {
    const dir = join(work, `dproxy-${++round}`);
    await mkdir(join(dir, "store"), { recursive: true });
    return startDistribution({ root: join(dir, "store"), secret: "bench", configDir: dir, extraYaml: `proxy:\n  remoteurl: ${peer.url}` });
  };
  const timed = async (server: ServerProcess) => mib / (await pullBlob(server.url, repo, blob));

  const samples = { peer: [] as number[], cold: [] as number[], distribution: [] as number[], warm: [] as number[], local: [] as number[] };
  for (let i = 0; i < ROUNDS; i++) {
    samples.peer.push(await timed(peer));
    const mirror = await startMirror(peer.url);
    const proxyMode = await startDistributionProxy();
    try {
      samples.cold.push(await timed(mirror));
      samples.distribution.push(await timed(proxyMode));
      await mirror.cached();
      samples.warm.push(await timed(mirror));
      samples.local.push(await timed(local));
    } finally {
      await mirror.stop();
      await proxyMode.stop();
    }
  }
  for (const [name, values] of Object.entries(samples)) log(`[mirror] ${name}: ${values.map((v) => v.toFixed(0)).join(", ")} MiB/s`);

  const counter = await CountingProxy.start(peer.url);
  const mirror = await startMirror(counter.url);
  try {
    const peak = await peakRssDuring(mirror.child.pid ?? 0, () => Promise.all(Array.from({ length: CONCURRENT }, () => pullBlob(mirror.url, repo, blob))));
    const gets = counter.count("GET", new RegExp(`/blobs/${blob.digest}`));
    log(`[mirror] ${CONCURRENT} concurrent cold pulls: ${gets} upstream GET(s), peak RSS ${peak.toFixed(0)} MiB`);
    return {
      peerMiBps: median(samples.peer),
      coldMiBps: median(samples.cold),
      distributionColdMiBps: median(samples.distribution),
      warmMiBps: median(samples.warm),
      localMiBps: median(samples.local),
      concurrentUpstreamGets: gets,
      concurrentPeakRssMiB: peak,
    };
  } finally {
    await mirror.stop();
    await counter.close();
  }
}
