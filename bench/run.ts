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
const ROUNDS = 3;
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

async function measure(name: string, server: ServerProcess, blob: BlobFile, scriptDir: string): Promise<Measures> {
  const log = (msg: string) => process.stderr.write(`[${name}] ${msg}\n`);
  const base = server.url;
  const pushes: number[] = [];
  for (let i = 0; i < ROUNDS; i++) pushes.push(blob.size / MiB / (await pushBlob(base, `bench/push${i}`, blob)));
  log(`push ${pushes.map((v) => v.toFixed(0)).join(", ")} MiB/s`);

  const pulls: number[] = [];
  for (let i = 0; i < ROUNDS; i++) pulls.push(blob.size / MiB / (await pullBlob(base, "bench/push0", blob)));
  log(`pull ${pulls.map((v) => v.toFixed(0)).join(", ")} MiB/s`);

  const t0 = process.hrtime.bigint();
  await Promise.all([0, 1, 2, 3].map(() => pullBlob(base, "bench/push0", blob)));
  const pull4 = (4 * blob.size) / MiB / (Number(process.hrtime.bigint() - t0) / 1e9);
  log(`4 concurrent pulls ${pull4.toFixed(0)} MiB/s`);

  const image = randomImage({ layers: 3, layerSize: 1024 });
  await pushImage(base, "bench/small", "latest", image);
  const manifest = await wrk(`${base}/v2/bench/small/manifests/latest`, {
    connections: 32, seconds: SECONDS, headers: { Accept: MANIFEST_ACCEPT }, scriptDir,
  });
  log(`manifest GET by tag ${manifest.rps.toFixed(0)} req/s, p99 ${manifest.p99ms} ms`);
  const head = await abHead(`${base}/v2/bench/small/blobs/${image.layers[0]!.digest}`, { connections: 32, seconds: SECONDS });
  log(`blob HEAD ${head.rps.toFixed(0)} req/s, p99 ${head.p99ms} ms`);

  const peak = await peakRssDuring(server.child.pid ?? 0, () =>
    Promise.all([0, 1, 2, 3].map((i) => pushBlob(base, `bench/rss${i}`, blob))),
  );
  log(`peak RSS during 4 concurrent pushes ${peak.toFixed(0)} MiB`);
  return {
    pushMiBps: median(pushes),
    pullMiBps: median(pulls),
    pull4MiBps: pull4,
    manifestRps: manifest.rps,
    manifestP99ms: manifest.p99ms,
    headRps: head.rps,
    headP99ms: head.p99ms,
    peakRssMiB: peak,
  };
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

    const ours = await measure("lain-registry", lain, blob, work);
    const theirs = await measure("distribution", distribution, blob, work);
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
