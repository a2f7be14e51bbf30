/**
 * Image lifecycle (issue 40): the scrub and retention, beside the GC rows. distribution has
 * neither, so each is set against a floor or against lain without it:
 * - the scrub's MiB/s over a store of BENCH_SCRUB_GIB (default 10) GiB, against `sha256sum` of
 *   the same files, one after the other;
 * - pulls of a 256 MiB blob while a scrub at 50 MiB/s reads the same store, against pulls alone;
 * - retention over 10,000 repositories: its dry run and its run;
 * - what recording pull times costs a pull: manifest GETs with retention rules on and off.
 */
import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Digest } from "../src/registry/digest.js";
import { layout } from "../src/registry/layout.js";
import type { RepositoryName, Tag } from "../src/registry/names.js";
import { forEachLimit } from "../src/gc/limit.js";
import { pushImage, randomImage } from "../test/helpers/oci.js";
import { cliArgs, freePort, startLainProcess, type ServerProcess } from "../test/helpers/process.js";
import { makeBlobFile, median, MiB, pullBlob, pushBlob, settle, wrk } from "./load.js";

const run = promisify(execFile);
const SCRUB_GIB = Number(process.env.BENCH_SCRUB_GIB ?? 10);
const SCRUB_FILE_MIB = 64;
const SCRUB_RATE = 50;
const REPOSITORIES = Number(process.env.BENCH_RETENTION_REPOSITORIES ?? 10_000);
const TAGS = 5;
const ROUNDS = 3;
const PULLS = 10;

export interface LifecycleMeasures {
  scrubGiB: number;
  scrubMiBps: number;
  sha256sumMiBps: number;
  pullMiBpsAlone: number;
  pullMiBpsBesideScrub: number;
  retentionRepositories: number;
  retentionDryRunSeconds: number;
  retentionRunSeconds: number;
  retentionRemovedTags: number;
  manifestRpsTracked: number;
  manifestRpsUntracked: number;
}

const sha256 = (content: Buffer) => `sha256:${createHash("sha256").update(content).digest("hex")}` as Digest;

async function put(root: string, path: string, content: Buffer | string): Promise<void> {
  const file = join(root, path);
  await mkdir(join(file, ".."), { recursive: true });
  await writeFile(file, content);
}

/** SCRUB_GIB of blobs of SCRUB_FILE_MIB each, written straight in the layout; their data files. */
async function bigStore(root: string): Promise<string[]> {
  const base = randomBytes(SCRUB_FILE_MIB * MiB);
  const files: string[] = [];
  for (let i = 0; i < (SCRUB_GIB * 1024) / SCRUB_FILE_MIB; i++) {
    base.writeUInt32BE(i, 0);
    const path = layout.blobData(sha256(base));
    await put(root, path, base);
    files.push(join(root, path));
  }
  return files;
}

/** REPOSITORIES repositories of TAGS tags each, pointing at TAGS shared manifests, their links written one second apart in age. */
async function manyRepositories(root: string): Promise<void> {
  const manifests = Array.from({ length: TAGS }, (_, i) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(Buffer.from(`c${i}`)), size: 2 }, layers: [] })));
  for (const m of manifests) await put(root, layout.blobData(sha256(m)), m);
  await forEachLimit(Array.from({ length: REPOSITORIES }, (_, r) => r), 32, async (r) => {
    const name = `bench/team${r % 50}/app${r}` as RepositoryName;
    for (const [i, m] of manifests.entries()) {
      const digest = sha256(m);
      await put(root, layout.revisionLink(name, digest), digest);
      await put(root, layout.tagCurrentLink(name, `v${i}` as Tag), digest);
    }
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function cli(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, cliArgs(...args), { maxBuffer: 512 * MiB, timeout: 3_600_000 });
  return stdout;
}

export async function measureLifecycle(work: string, log: (line: string) => void): Promise<LifecycleMeasures> {
  const servers: ServerProcess[] = [];
  try {
    // The scrub over a big store, and pulls beside it.
    const root = join(work, "lifecycle-store");
    const files = await bigStore(root);
    const config = join(work, "lifecycle.yml");
    await writeFile(config, `version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: ${root}}}\nhttp: {secret: bench}\n`);
    settle();
    const sha256sumSeconds = await timed(() => run("sha256sum", files, { maxBuffer: 16 * MiB, timeout: 3_600_000 }));
    settle();
    const scrubSeconds = await timed(() => cli("scrub", config, "--dry-run"));
    const mib = SCRUB_GIB * 1024;
    log(`[lifecycle] scrub of ${SCRUB_GIB} GiB ${scrubSeconds.toFixed(1)} s (${(mib / scrubSeconds).toFixed(0)} MiB/s), sha256sum ${sha256sumSeconds.toFixed(1)} s`);

    const registry = await startLainProcess(config, await freePort());
    servers.push(registry);
    const blob = await makeBlobFile(join(work, "lifecycle-blob"), 256 * MiB);
    await pushBlob(registry.url, "bench/pull", blob);
    const alone: number[] = [];
    const beside: number[] = [];
    // Ten pulls one after the other: a single one lasts a tenth of a second here.
    const pullMiBps = async () => {
      let seconds = 0;
      for (let p = 0; p < PULLS; p++) seconds += await pullBlob(registry.url, "bench/pull", blob);
      return (PULLS * blob.size) / MiB / seconds;
    };
    for (let i = 0; i < ROUNDS; i++) {
      settle();
      alone.push(await pullMiBps());
      const scrub = spawn(process.execPath, cliArgs("scrub", config, "--dry-run", "--rate", String(SCRUB_RATE)), { stdio: "ignore" });
      const ended = new Promise((resolve) => scrub.once("exit", resolve));
      // Once the scrub is reading: it lists the store first.
      await new Promise((r) => setTimeout(r, 2000));
      beside.push(await pullMiBps());
      scrub.kill("SIGTERM");
      await ended;
    }
    log(`[lifecycle] pulls alone ${alone.map((v) => v.toFixed(0)).join(", ")} MiB/s, beside a scrub at ${SCRUB_RATE} MiB/s ${beside.map((v) => v.toFixed(0)).join(", ")} MiB/s`);

    // Retention over many repositories.
    const manyRoot = join(work, "lifecycle-retention");
    await manyRepositories(manyRoot);
    const rules = `\n  retention:\n    rules:\n      - repositories: "bench/.*"\n        keep: {newestpushed: 3}`;
    const retentionConfig = join(work, "lifecycle-retention.yml");
    await writeFile(retentionConfig, `version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: ${manyRoot}}\n  delete: {enabled: true}${rules}\nhttp: {secret: bench}\n`);
    settle();
    const dryRunSeconds = await timed(() => cli("retention", retentionConfig, "--dry-run"));
    settle();
    let removed = 0;
    const runSeconds = await timed(async () => {
      removed = ((await cli("retention", retentionConfig)).match(/^removed .+:v\d$/gm) ?? []).length;
    });
    log(`[lifecycle] retention over ${REPOSITORIES} repositories: dry run ${dryRunSeconds.toFixed(1)} s, run ${runSeconds.toFixed(1)} s, ${removed} tags removed`);

    // What a pull's record costs: manifest GETs, rules on and off, in alternating rounds.
    const image = randomImage({ layers: 1, layerSize: 1000 });
    const start = async (withRules: boolean) => {
      const file = join(work, `lifecycle-pulls-${withRules}.yml`);
      await writeFile(file, `version: 0.1\nlog: {level: warn, accesslog: {disabled: true}}\nstorage:\n  filesystem: {rootdirectory: ${join(work, `lifecycle-pulls-${withRules}`)}}${withRules ? rules : ""}\nhttp: {secret: bench}\n`);
      const server = await startLainProcess(file, await freePort());
      servers.push(server);
      await pushImage(server.url, "bench/small", "latest", image);
      return server;
    };
    const [plain, recording] = [await start(false), await start(true)];
    const untracked: number[] = [];
    const tracked: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      for (const [server, out] of [[plain, untracked], [recording, tracked]] as const) {
        settle();
        out.push((await wrk(`${server.url}/v2/bench/small/manifests/latest`, { connections: 32, seconds: 5, headers: { Accept: image.manifest.mediaType }, scriptDir: work })).rps);
      }
    }
    log(`[lifecycle] manifest GETs, pull times recorded ${tracked.map((v) => v.toFixed(0)).join(", ")} req/s, not ${untracked.map((v) => v.toFixed(0)).join(", ")}`);
    return {
      scrubGiB: SCRUB_GIB,
      scrubMiBps: mib / scrubSeconds,
      sha256sumMiBps: mib / sha256sumSeconds,
      pullMiBpsAlone: median(alone),
      pullMiBpsBesideScrub: median(beside),
      retentionRepositories: REPOSITORIES,
      retentionDryRunSeconds: dryRunSeconds,
      retentionRunSeconds: runSeconds,
      retentionRemovedTags: removed,
      manifestRpsTracked: median(tracked),
      manifestRpsUntracked: median(untracked),
    };
  } finally {
    for (const server of servers) await server.stop();
  }
}
