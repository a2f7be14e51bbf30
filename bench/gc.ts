/**
 * Garbage collection: lain-registry vs distribution's garbage-collect on copies of one store of
 * 10,000 repositories and 100,000 small blobs (written straight in distribution's layout), half
 * of the repositories' manifests deleted. distribution's runs on its copy with nothing serving it
 * (it needs the registry stopped or read-only); lain-registry's runs on the other copy while a
 * lain-registry serving it takes pushes: new images, and images deleted earlier pushed again
 * (their blobs are what the collection is deleting). Wall time and peak RSS of each collection,
 * as separate processes; the pushes acknowledged and refused meanwhile. On the filesystem and
 * on S3 (Ceph RGW).
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Digest } from "../src/registry/digest.js";
import type { RepositoryName, Tag } from "../src/registry/names.js";
import { forEachLimit } from "../src/gc/limit.js";
import { listIfPresent, type StorageDriver } from "../src/storage/driver.js";
import { s3Driver } from "../src/storage/factory.js";
import { FilesystemDriver } from "../src/storage/filesystem.js";
import { layout } from "../src/registry/layout.js";
import { cliArgs, freePort, startLainProcess } from "../test/helpers/process.js";
import { RGW_TOOLS, startRgw, type S3Server } from "../test/helpers/rgw.js";
import { createBucket, s3StorageYaml, s3TestOptions } from "../test/helpers/s3.js";
import { hasTool } from "../test/helpers/tools.js";
import { sampledPeakRss } from "./load.js";

const REPOSITORIES = Number(process.env.BENCH_GC_REPOSITORIES ?? 10_000);
/** RGW on memstore here writes a few hundred small objects a second: 300 repositories (3,000 blobs) by default. */
const S3_REPOSITORIES = Number(process.env.BENCH_GC_S3_REPOSITORIES ?? 300);
const LAYERS = 8;
/** lain's delay: the pushes during its collection must finish within it (a push takes milliseconds here). */
const LAIN_DELAY_MS = 10_000;

export interface GcMeasures {
  repositories: number;
  blobs: number;
  lainSeconds: number;
  distributionSeconds: number;
  lainPeakRssMiB: number;
  distributionPeakRssMiB: number;
  /** Both removed the same blobs, but for those of the images pushed again during lain's. */
  sameResult: boolean;
  lainFreed: number;
  distributionFreed: number;
  /** Pushes during lain's collection: acknowledged, refused; of the acknowledged ones pushed again, those that pull back whole. */
  pushesAcknowledged: number;
  pushesRefused: number;
  repushedIntact: number;
  repushed: number;
}

interface StoredImage {
  name: RepositoryName;
  manifest: Buffer;
  blobs: Buffer[];
}

function digest(content: Buffer): Digest {
  return `sha256:${createHash("sha256").update(content).digest("hex")}` as Digest;
}

/** The two copies of the store, one for each collector. */
export interface Copies {
  /** The `storage:` section of distribution's copy, and of lain's. */
  theirs: string;
  ours: string;
  /** Writes an object into both. */
  put(path: string, content: Buffer | string): Promise<void>;
  /** What a manifest deleted through the API leaves: an empty directory (stores that have them). */
  leaveDir(path: string): Promise<void>;
  blobs(copy: "theirs" | "ours"): Promise<Set<string>>;
}

/** The blob digests a store holds, read through a driver. */
async function storedDigests(driver: StorageDriver): Promise<Set<string>> {
  const out = new Set<string>();
  for (const prefix of await listIfPresent(driver, `${layout.blobsRoot}/sha256`)) {
    for (const entry of await listIfPresent(driver, prefix)) out.add(`sha256:${entry.slice(entry.lastIndexOf("/") + 1)}`);
  }
  return out;
}

function filesystemCopies(work: string): Copies {
  const roots = { theirs: join(work, "gc-distribution"), ours: join(work, "gc-lain") };
  return {
    theirs: `  filesystem: {rootdirectory: ${roots.theirs}}`,
    ours: `  filesystem: {rootdirectory: ${roots.ours}}`,
    put: async (path, content) => {
      for (const root of Object.values(roots)) {
        const file = join(root, path);
        await mkdir(join(file, ".."), { recursive: true });
        await writeFile(file, content);
      }
    },
    leaveDir: async (path) => {
      for (const root of Object.values(roots)) await mkdir(join(root, path), { recursive: true });
    },
    blobs: (copy) => storedDigests(new FilesystemDriver(roots[copy])),
  };
}

async function s3Copies(rgw: S3Server): Promise<Copies> {
  const buckets = { theirs: await createBucket(rgw, "gc-d"), ours: await createBucket(rgw, "gc-l") };
  const drivers = { theirs: await s3Driver(s3TestOptions(rgw, buckets.theirs)), ours: await s3Driver(s3TestOptions(rgw, buckets.ours)) };
  return {
    theirs: s3StorageYaml(rgw, buckets.theirs),
    ours: s3StorageYaml(rgw, buckets.ours),
    put: async (path, content) => {
      await Promise.all(Object.values(drivers).map((d) => d.putContent(path, Buffer.from(content))));
    },
    leaveDir: () => Promise.resolve(),
    blobs: (copy) => storedDigests(drivers[copy]),
  };
}

/**
 * A store as distribution lays it out, repositories `from` to `repositories` (LAYERS + 2 blobs
 * each); every odd repository's manifest is deleted (link gone), and returned.
 */
export async function makeStore(copies: Pick<Copies, "put" | "leaveDir">, repositories: number, from = 0): Promise<{ blobs: number; deleted: StoredImage[] }> {
  let blobs = 0;
  const deleted: StoredImage[] = [];
  const put = (path: string, content: Buffer | string) => copies.put(path, content);
  await forEachLimit(Array.from({ length: repositories - from }, (_, r) => from + r), 16, async (r) => {
    const name = `bench/team${r % 50}/app${r}` as RepositoryName;
    const layers = Array.from({ length: LAYERS }, () => randomBytes(64));
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", n: r }));
    const { manifest } = imageOf(layers, config);
    for (const content of [...layers, config, manifest]) {
      await put(layout.blobData(digest(content)), content);
      blobs++;
      if (content !== manifest) await put(layout.layerLink(name, digest(content)), digest(content));
    }
    const m = digest(manifest);
    const latest = "latest" as Tag;
    if (r % 2 === 0) {
      await put(layout.revisionLink(name, m), m);
      await put(layout.tagCurrentLink(name, latest), m);
      await put(layout.tagIndexLink(name, latest, m), m);
    } else {
      // Deleted through the API: distribution leaves the directories, without links.
      await copies.leaveDir(layout.revisionDir(name, m));
      deleted.push({ name, manifest, blobs: [...layers, config] });
    }
  });
  return { blobs, deleted };
}

/** A push as docker makes it: HEAD each blob, upload the missing ones, then the manifest; whether it was acknowledged. */
async function pushImage(base: string, image: StoredImage): Promise<boolean> {
  for (const content of image.blobs) {
    const head = await fetch(`${base}/v2/${image.name}/blobs/${digest(content)}`, { method: "HEAD" });
    if (head.status === 200) continue;
    const start = await fetch(`${base}/v2/${image.name}/blobs/uploads/`, { method: "POST" });
    const location = new URL(start.headers.get("location") ?? "", base);
    location.searchParams.set("digest", digest(content));
    const put = await fetch(location, { method: "PUT", body: content, headers: { "content-type": "application/octet-stream" } });
    if (put.status !== 201) return false;
  }
  const put = await fetch(`${base}/v2/${image.name}/manifests/latest`, {
    method: "PUT",
    body: image.manifest,
    headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
  });
  return put.status === 201;
}

async function pullsBack(base: string, image: StoredImage): Promise<boolean> {
  for (const content of image.blobs) {
    const got = await fetch(`${base}/v2/${image.name}/blobs/${digest(content)}`);
    if (got.status !== 200 || !Buffer.from(await got.arrayBuffer()).equals(content)) return false;
  }
  return true;
}

/** An OCI image manifest of these layers and config, and its blobs. */
function imageOf(layers: Buffer[], config: Buffer): Omit<StoredImage, "name"> {
  const descriptor = (mediaType: string, content: Buffer) => ({ mediaType, digest: digest(content), size: content.length });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: descriptor("application/vnd.oci.image.config.v1+json", config),
      layers: layers.map((l) => descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l)),
    }),
  );
  return { manifest, blobs: [...layers, config] };
}

function freshImage(): Omit<StoredImage, "name"> {
  return imageOf([randomBytes(2048), randomBytes(2048)], Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", fresh: randomBytes(8).toString("hex") })));
}

export async function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; peakMiB: number }> {
  const started = process.hrtime.bigint();
  const child = spawn(command, args, { env, stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 1)));
  const peakMiB = await sampledPeakRss(child.pid ?? 0, () => exited);
  const code = await exited;
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} exited ${code}`);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, peakMiB };
}

/** On the filesystem. */
export function measureGc(work: string, log: (m: string) => void): Promise<GcMeasures> {
  return compare(filesystemCopies(work), REPOSITORIES, work, log, "filesystem");
}

/** On S3: a Ceph RGW of its own; undefined where RGW cannot run. */
export async function measureGcS3(work: string, log: (m: string) => void): Promise<GcMeasures | undefined> {
  if (!RGW_TOOLS.every(hasTool)) return undefined;
  const rgw = await startRgw({ memoryBytes: 8 * 1024 ** 3 });
  try {
    return await compare(await s3Copies(rgw), S3_REPOSITORIES, work, log, "s3");
  } finally {
    await rgw.stop();
  }
}

async function compare(copies: Copies, repositories: number, work: string, log: (m: string) => void, label: string): Promise<GcMeasures> {
  log(`[gc ${label}] writing a store of ${repositories} repositories`);
  const { blobs, deleted } = await makeStore(copies, repositories);
  // The store is older than lain's delay, which the pushes during its run are not.
  const written = Date.now();
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE;
  await writeFile(join(work, "gc-d.yml"), `version: 0.1\nstorage:\n${copies.theirs}\n`);
  await writeFile(join(work, "gc-l.yml"), `version: 0.1\nlog: {level: warn}\nstorage:\n${copies.ours}\n  delete: {enabled: true}\n  redirect: {disable: true}\nhttp: {secret: bench}\n`);
  const before = await copies.blobs("ours");
  const distribution = await timed("docker-registry", ["garbage-collect", join(work, "gc-d.yml")], env);
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, written + LAIN_DELAY_MS + 1000 - Date.now())));
  const server = await startLainProcess(join(work, "gc-l.yml"), await freePort());
  const pushes = { acknowledged: 0, refused: 0 };
  const repushed: StoredImage[] = [];
  let lain: { seconds: number; peakMiB: number };
  try {
    let collecting = true;
    const pushing = (async () => {
      for (let i = 0; collecting && i < deleted.length; i++) {
        // New images and images deleted earlier, in turn.
        const again = deleted[(i * 7919) % deleted.length] as StoredImage;
        const fresh: StoredImage = { name: `bench/online${i % 10}` as RepositoryName, ...freshImage() };
        for (const image of [fresh, again]) {
          if (await pushImage(server.url, image)) {
            pushes.acknowledged++;
            if (image === again) repushed.push(again);
          } else pushes.refused++;
        }
      }
    })();
    lain = await timed(process.execPath, cliArgs("garbage-collect", join(work, "gc-l.yml"), "--delay", `${LAIN_DELAY_MS / 1000}s`), env);
    collecting = false;
    await pushing;
  } finally {
    await server.stop();
  }
  const verify = await startLainProcess(join(work, "gc-l.yml"), await freePort());
  let repushedIntact = 0;
  try {
    for (const image of repushed) if (await pullsBack(verify.url, image)) repushedIntact++;
  } finally {
    await verify.stop();
  }
  const left = await copies.blobs("theirs");
  const right = await copies.blobs("ours");
  const removedByThem = [...before].filter((d) => !left.has(d));
  const removedByUs = [...before].filter((d) => !right.has(d));
  const takenUp = new Set(repushed.flatMap((image) => [image.manifest, ...image.blobs].map(digest)));
  const sameResult = removedByUs.every((d) => !left.has(d)) && removedByThem.every((d) => !right.has(d) || takenUp.has(d as Digest));
  log(
    `[gc ${label}] ${blobs} blobs: lain ${lain.seconds.toFixed(2)} s, ${lain.peakMiB.toFixed(0)} MiB, freed ${removedByUs.length}, during ${pushes.acknowledged} acknowledged / ${pushes.refused} refused pushes ` +
      `(${repushedIntact} of ${repushed.length} images pushed again pull back whole); distribution ${distribution.seconds.toFixed(2)} s, ${distribution.peakMiB.toFixed(0)} MiB, freed ${removedByThem.length}; same result: ${sameResult}`,
  );
  return {
    repositories,
    blobs,
    lainSeconds: lain.seconds,
    distributionSeconds: distribution.seconds,
    lainPeakRssMiB: lain.peakMiB,
    distributionPeakRssMiB: distribution.peakMiB,
    sameResult,
    lainFreed: removedByUs.length,
    distributionFreed: removedByThem.length,
    pushesAcknowledged: pushes.acknowledged,
    pushesRefused: pushes.refused,
    repushedIntact,
    repushed: repushed.length,
  };
}
