/**
 * What a collection's memory grows by per blob: lain-registry's and distribution's
 * `garbage-collect --dry-run` on one store grown from the first count of repositories to the
 * second (LAYERS + 2 blobs each), the peak RSS of each at both, and the slope between them in
 * KiB per blob (the fixed cost of the process, its libraries and its buffers cancels out).
 * Dry runs, so that the store stays as it is for the next count; a real run's marks hold the
 * same sets.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { s3Driver } from "../src/storage/factory.js";
import { cliArgs } from "../test/helpers/process.js";
import { RGW_TOOLS, startRgw } from "../test/helpers/rgw.js";
import { createBucket, s3StorageYaml, s3TestOptions } from "../test/helpers/s3.js";
import { hasTool } from "../test/helpers/tools.js";
import { makeStore, timed, type Copies } from "./gc.js";

/** The counts on the filesystem: 100,000 and 300,000 blobs. */
const FILESYSTEM_REPOSITORIES = counts(process.env.BENCH_GC_MEMORY_REPOSITORIES ?? "10000,30000");
/**
 * RGW on memstore takes a few hundred small objects a second here: 10,000 and 30,000 blobs by
 * default (4 minutes); "10000,30000" measures the counts in about half an hour.
 */
const S3_REPOSITORIES = counts(process.env.BENCH_GC_MEMORY_S3_REPOSITORIES ?? "1000,3000");

function counts(text: string): [number, number] {
  const [a, b] = text.split(",").map(Number);
  if (!a || !b || !(b > a)) throw new Error(`"${text}": two counts of repositories, the second larger`);
  return [a, b];
}

export interface GcMemoryPoint {
  blobs: number;
  lainPeakRssMiB: number;
  distributionPeakRssMiB: number;
}

export interface GcMemory {
  points: [GcMemoryPoint, GcMemoryPoint];
  /** Peak RSS grown per blob between the two counts. */
  lainKiBPerBlob: number;
  distributionKiBPerBlob: number;
}

type OneStore = Pick<Copies, "put" | "leaveDir"> & { yaml: string };

export function measureGcMemory(work: string, log: (m: string) => void): Promise<GcMemory> {
  const root = join(work, "gc-memory");
  const store: OneStore = {
    yaml: `  filesystem: {rootdirectory: ${root}}`,
    put: async (path, content) => {
      await mkdir(join(root, path, ".."), { recursive: true });
      await writeFile(join(root, path), content);
    },
    leaveDir: async (path) => void (await mkdir(join(root, path), { recursive: true })),
  };
  return slope(store, FILESYSTEM_REPOSITORIES, work, (m) => log(`[gc memory filesystem] ${m}`));
}

/** On a Ceph RGW of its own; undefined where RGW cannot run. */
export async function measureGcMemoryS3(work: string, log: (m: string) => void): Promise<GcMemory | undefined> {
  if (!RGW_TOOLS.every(hasTool)) return undefined;
  const rgw = await startRgw({ memoryBytes: 8 * 1024 ** 3 });
  try {
    const bucket = await createBucket(rgw, "gc-memory");
    const driver = await s3Driver(s3TestOptions(rgw, bucket));
    const store: OneStore = {
      yaml: s3StorageYaml(rgw, bucket),
      put: (path, content) => driver.putContent(path, Buffer.from(content)),
      leaveDir: () => Promise.resolve(),
    };
    return await slope(store, S3_REPOSITORIES, work, (m) => log(`[gc memory s3] ${m}`));
  } finally {
    await rgw.stop();
  }
}

async function slope(store: OneStore, repositories: [number, number], work: string, log: (m: string) => void): Promise<GcMemory> {
  const env = { ...process.env };
  // distribution panics at start when AWS_CA_BUNDLE is set; lain's collector is run alike.
  delete env.AWS_CA_BUNDLE;
  const config = join(work, "gc-memory.yml");
  await writeFile(config, `version: 0.1\nlog: {level: warn}\nstorage:\n${store.yaml}\n  delete: {enabled: true}\n`);
  const points: GcMemoryPoint[] = [];
  let blobs = 0;
  let made = 0;
  for (const count of repositories) {
    blobs += (await makeStore(store, count, made)).blobs;
    made = count;
    const lain = await timed(process.execPath, cliArgs("garbage-collect", config, "--dry-run", "--delay", "0s"), env);
    const distribution = await timed("docker-registry", ["garbage-collect", "--dry-run", config], env);
    log(`${blobs} blobs: peak RSS lain ${lain.peakMiB.toFixed(1)} MiB, distribution ${distribution.peakMiB.toFixed(1)} MiB`);
    points.push({ blobs, lainPeakRssMiB: lain.peakMiB, distributionPeakRssMiB: distribution.peakMiB });
  }
  const [a, b] = points as [GcMemoryPoint, GcMemoryPoint];
  const perBlob = (key: "lainPeakRssMiB" | "distributionPeakRssMiB") => ((b[key] - a[key]) * 1024) / (b.blobs - a.blobs);
  return { points: [a, b], lainKiBPerBlob: perBlob("lainPeakRssMiB"), distributionKiBPerBlob: perBlob("distributionPeakRssMiB") };
}
