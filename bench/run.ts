/**
 * `npm run bench`: lain-registry and Debian's docker-registry (CNCF distribution) side by side
 * on this machine, each on its own temporary store, measured by the same client in the same run.
 * Prints lain / distribution ratios and writes bench/results/<date>.json.
 *
 * BENCH_BLOB_MIB (default 256) and BENCH_SECONDS (default 10) shrink a run for a quick look.
 */
import { execFileSync } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { startDistribution } from "../test/helpers/distribution.js";
import { pushImage, randomImage } from "../test/helpers/oci.js";
import { freePort, startLainProcess, type ServerProcess } from "../test/helpers/process.js";
import { tempDir } from "../test/helpers/registry.js";
import { abHead, loopbackMiBps, makeBlobFile, MiB, peakRssDuring, pullBlob, pushBlob, wrk, type BlobFile } from "./load.js";

const BLOB_MIB = Number(process.env.BENCH_BLOB_MIB ?? 256);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = 5;
const MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

interface Measures {
  pushMiBps: number;
  pullMiBps: number;
  pull4MiBps: number;
  manifestRps: number;
  manifestP99ms: number;
  headRps: number;
  headP99ms: number;
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

/** Flushes dirty pages (the test blob, the previous phase) so no phase pays for another's writes. */
function settle(): void {
  execFileSync("sync");
}

/**
 * Runs `round` ROUNDS times for each contender, alternating between them so that both see the
 * same machine state, and records the median of what it returns.
 */
async function alternate(contenders: Contender[], key: keyof Measures, unit: string, round: (c: Contender, i: number) => Promise<number>): Promise<void> {
  const samples = new Map<Contender, number[]>(contenders.map((c) => [c, []]));
  for (let i = 0; i < ROUNDS; i++) {
    for (const c of contenders) {
      settle();
      samples.get(c)!.push(await round(c, i));
    }
  }
  for (const c of contenders) {
    const values = samples.get(c)!;
    c.measures[key] = median(values);
    log(`[${c.name}] ${key}: ${values.map((v) => v.toFixed(0)).join(", ")} ${unit}`);
  }
}

async function measureAll(contenders: Contender[], blob: BlobFile, scriptDir: string): Promise<void> {
  const mib = blob.size / MiB;
  await alternate(contenders, "pushMiBps", "MiB/s", async (c, i) => mib / (await pushBlob(c.server.url, `bench/push${i}`, blob)));
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
    const manifest = await wrk(`${c.server.url}/v2/bench/small/manifests/latest`, {
      connections: 32, seconds: SECONDS, headers: { Accept: MANIFEST_ACCEPT }, scriptDir,
    });
    c.measures.manifestRps = manifest.rps;
    c.measures.manifestP99ms = manifest.p99ms;
    log(`[${c.name}] manifest GET by tag ${manifest.rps.toFixed(0)} req/s, p99 ${manifest.p99ms} ms`);
    const head = await abHead(`${c.server.url}/v2/bench/small/blobs/${image.layers[0]!.digest}`, { connections: 32, seconds: SECONDS });
    c.measures.headRps = head.rps;
    c.measures.headP99ms = head.p99ms;
    log(`[${c.name}] blob HEAD ${head.rps.toFixed(0)} req/s, p99 ${head.p99ms} ms`);
  }

  for (const c of contenders) {
    settle();
    c.measures.peakRssMiB = await peakRssDuring(c.server.child.pid ?? 0, () =>
      Promise.all([0, 1, 2, 3].map((i) => pushBlob(c.server.url, `bench/rss${i}`, blob))),
    );
    log(`[${c.name}] peak RSS during 4 concurrent pushes ${c.measures.peakRssMiB.toFixed(0)} MiB`);
  }
}

async function main(): Promise<void> {
  const work = await tempDir("lain-bench-");
  let lain: ServerProcess | undefined;
  let distribution: ServerProcess | undefined;
  try {
    process.stderr.write(`generating a ${BLOB_MIB} MiB random blob\n`);
    const blob = await makeBlobFile(join(work, "blob"), BLOB_MIB * MiB);
    const loopback = await loopbackMiBps(BLOB_MIB * MiB);
    process.stderr.write(`loopback carries ${loopback.toFixed(0)} MiB/s\n`);

    const config = join(work, "lain.yml");
    await writeFile(config, `version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: ${join(work, "lain")}}\nhttp:\n  secret: bench\n`);
    lain = await startLainProcess(config, await freePort());
    await mkdir(join(work, "distribution"));
    distribution = await startDistribution({ root: join(work, "distribution"), secret: "bench", configDir: work });

    const contenders: Contender[] = [
      { name: "lain-registry", server: lain, measures: {} },
      { name: "distribution", server: distribution, measures: {} },
    ];
    await measureAll(contenders, blob, work);
    const ours = contenders[0]!.measures as Measures;
    const theirs = contenders[1]!.measures as Measures;
    const ratio = (key: keyof Measures) => ours[key] / theirs[key];
    const rows: Array<[string, keyof Measures, string]> = [
      ["push 256 MiB (MiB/s)", "pushMiBps", "≥ 1.5"],
      ["pull 256 MiB (MiB/s)", "pullMiBps", "≥ 1.0"],
      ["4 concurrent pulls (MiB/s)", "pull4MiBps", ""],
      ["manifest GET by tag, c=32 (req/s)", "manifestRps", "≥ 3"],
      ["manifest GET p99 (ms)", "manifestP99ms", "< 1"],
      ["blob HEAD, c=32 (req/s)", "headRps", "≥ 3"],
      ["blob HEAD p99 (ms)", "headP99ms", "< 1"],
      ["peak RSS, 4 pushes at once (MiB)", "peakRssMiB", "lain < 150"],
    ];
    const lines = [
      `${"measure".padEnd(36)}${"lain".padStart(10)}${"distribution".padStart(14)}${"ratio".padStart(8)}  target`,
      ...rows.map(([label, key, target]) =>
        `${label.padEnd(36)}${ours[key].toFixed(1).padStart(10)}${theirs[key].toFixed(1).padStart(14)}${ratio(key).toFixed(2).padStart(8)}  ${target}`,
      ),
      `pull vs loopback (${loopback.toFixed(0)} MiB/s): ${((ours.pullMiBps / loopback) * 100).toFixed(0)}% (target ≥ 80%)`,
    ];
    process.stdout.write(`\n${lines.join("\n")}\n`);

    const distributionVersion = execFileSync("docker-registry", ["--version"], { encoding: "utf8" }).trim();
    const results = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, distribution: distributionVersion },
      blobMiB: BLOB_MIB,
      seconds: SECONDS,
      loopbackMiBps: loopback,
      lain: ours,
      distribution: theirs,
      ratios: Object.fromEntries(rows.map(([, key]) => [key, ratio(key)])),
    };
    const dir = new URL("./results/", import.meta.url).pathname;
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${results.date.slice(0, 10)}.json`);
    await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
    process.stdout.write(`\nwritten to ${file}\n`);
  } finally {
    await lain?.stop();
    await distribution?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
