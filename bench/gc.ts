/**
 * Garbage collection: lain-registry vs distribution's garbage-collect on copies of one store of
 * 2,000 repositories and ~20,000 small blobs (written straight in distribution's layout), half of
 * the repositories' manifests deleted. Wall time and peak RSS of each, as separate processes.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { cp, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Digest } from "../src/registry/digest.js";
import type { RepositoryName, Tag } from "../src/registry/names.js";
import { layout } from "../src/storage/layout.js";
import { cliArgs } from "../test/helpers/process.js";
import { storedBlobs } from "../test/helpers/store.js";
import { sampledPeakRss } from "./load.js";

const REPOSITORIES = Number(process.env.BENCH_GC_REPOSITORIES ?? 2000);
const LAYERS = 8;

export interface GcMeasures {
  repositories: number;
  blobs: number;
  lainSeconds: number;
  distributionSeconds: number;
  lainPeakRssMiB: number;
  distributionPeakRssMiB: number;
  /** Both removed the same blobs. */
  sameResult: boolean;
}

function digest(content: Buffer): Digest {
  return `sha256:${createHash("sha256").update(content).digest("hex")}` as Digest;
}

async function put(root: string, path: string, content: Buffer | string): Promise<void> {
  const file = join(root, path);
  await mkdir(join(file, ".."), { recursive: true });
  await writeFile(file, content);
}

/** A store as distribution lays it out; every odd repository's manifest is deleted (link gone). */
async function makeStore(root: string): Promise<number> {
  let blobs = 0;
  for (let r = 0; r < REPOSITORIES; r++) {
    const name = `bench/team${r % 50}/app${r}` as RepositoryName;
    const layers = Array.from({ length: LAYERS }, () => randomBytes(64));
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", n: r }));
    const descriptor = (mediaType: string, content: Buffer) => ({ mediaType, digest: digest(content), size: content.length });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: descriptor("application/vnd.oci.image.config.v1+json", config),
        layers: layers.map((l) => descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l)),
      }),
    );
    for (const content of [...layers, config, manifest]) {
      await put(root, layout.blobData(digest(content)), content);
      blobs++;
      if (content !== manifest) await put(root, layout.layerLink(name, digest(content)), digest(content));
    }
    const m = digest(manifest);
    const latest = "latest" as Tag;
    if (r % 2 === 0) {
      await put(root, layout.revisionLink(name, m), m);
      await put(root, layout.tagCurrentLink(name, latest), m);
      await put(root, layout.tagIndexLink(name, latest, m), m);
    } else {
      // Deleted through the API: distribution leaves the directories, without links.
      await mkdir(join(root, layout.revisionDir(name, m)), { recursive: true });
    }
  }
  return blobs;
}

async function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; peakMiB: number }> {
  const started = process.hrtime.bigint();
  const child = spawn(command, args, { env, stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 1)));
  const peakMiB = await sampledPeakRss(child.pid ?? 0, () => exited);
  const code = await exited;
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} exited ${code}`);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, peakMiB };
}

export async function measureGc(work: string, log: (m: string) => void): Promise<GcMeasures> {
  const original = join(work, "gc-store");
  log(`[gc] writing a store of ${REPOSITORIES} repositories`);
  const blobs = await makeStore(original);
  const theirs = join(work, "gc-distribution");
  const ours = join(work, "gc-lain");
  await cp(original, theirs, { recursive: true });
  await cp(original, ours, { recursive: true });
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE;
  await writeFile(join(work, "gc-d.yml"), `version: 0.1\nstorage: {filesystem: {rootdirectory: ${theirs}}}\n`);
  await writeFile(join(work, "gc-l.yml"), `version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: ${ours}}}\n`);
  const distribution = await timed("docker-registry", ["garbage-collect", join(work, "gc-d.yml")], env);
  const lain = await timed(process.execPath, cliArgs("garbage-collect", join(work, "gc-l.yml"), "--delay", "0s"), env);
  const [left, right] = [await storedBlobs(theirs), await storedBlobs(ours)];
  const sameResult = left.length === right.length && left.every((d, i) => d === right[i]);
  log(`[gc] ${blobs} blobs: lain ${lain.seconds.toFixed(2)} s, ${lain.peakMiB.toFixed(0)} MiB; distribution ${distribution.seconds.toFixed(2)} s, ${distribution.peakMiB.toFixed(0)} MiB; same result: ${sameResult}`);
  return {
    repositories: REPOSITORIES,
    blobs,
    lainSeconds: lain.seconds,
    distributionSeconds: distribution.seconds,
    lainPeakRssMiB: lain.peakMiB,
    distributionPeakRssMiB: distribution.peakMiB,
    sameResult,
  };
}
