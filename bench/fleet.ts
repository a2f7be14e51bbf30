/**
 * The fleet measure: four lain-registry node mirrors behind a bandwidth-limited link to the
 * primary (Debian's docker-registry), each pulling the same cold blob at once, as a rollout
 * does; with proxy.siblings on and off, and one mirror alone over the same link.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startDistribution } from "../test/helpers/distribution.js";
import { startEtcd } from "../test/helpers/etcd.js";
import { LimitedLink } from "../test/helpers/limited-link.js";
import { freePort, startLainProcess, type ServerProcess } from "../test/helpers/process.js";
import { scrape } from "../test/helpers/metrics.js";
import { until } from "../test/helpers/until.js";
import { makeBlobFile, median, MiB, pullBlob, pushBlob, settle, type BlobFile } from "./load.js";

const MIRRORS = 4;
const ROUNDS = 3;
const BLOB_MIB = 64;
const LINK_MIB_PER_SECOND = 64;

export interface FleetMeasures {
  mirrors: number;
  linkMiBps: number;
  blobMiB: number;
  /** Seconds until the last of the four nodes has the blob: siblings on, off; one mirror alone. */
  rolloutSeconds: number;
  rolloutSecondsWithoutSiblings: number;
  singleSeconds: number;
  /** What crossed the link per rollout, in blobs. */
  primaryEgressBlobs: number;
  primaryEgressBlobsWithoutSiblings: number;
}

/** Four mirrors registered under one etcd prefix, proxy.siblings on or off. */
async function startFleet(work: string, name: string, etcd: string, link: string, siblings: boolean): Promise<ServerProcess[]> {
  const fleet: ServerProcess[] = [];
  for (let i = 0; i < MIRRORS; i++) {
    const port = await freePort();
    const dir = join(work, `${name}-${i}`);
    await mkdir(dir, { recursive: true });
    const config = join(dir, "lain.yml");
    await writeFile(
      config,
      [
        "version: 0.1",
        "log: {level: error}",
        `storage: {filesystem: {rootdirectory: ${join(dir, "store")}}}`,
        "http: {secret: bench-fleet, debug: {prometheus: {enabled: true, path: /metrics}}}",
        `etcd: {endpoints: [${etcd}]}`,
        `cluster: {advertise: "http://127.0.0.1:${port}", prefix: /bench/${name}, ttl: 2s}`,
        `proxy: {remoteurl: ${link}, siblings: {enabled: ${siblings}}}`,
      ].join("\n"),
    );
    fleet.push(await startLainProcess(config, port));
  }
  if (siblings) {
    for (const mirror of fleet) {
      await until(async () => (await scrape(`${mirror.url}/metrics`))("registry_proxy_siblings") === MIRRORS, "the fleet to know itself");
    }
  }
  return fleet;
}

export async function measureFleet(work: string, log: (m: string) => void): Promise<FleetMeasures> {
  const etcd = await startEtcd();
  const primaryRoot = join(work, "fleet-primary");
  await mkdir(primaryRoot, { recursive: true });
  const primary = await startDistribution({ root: primaryRoot, secret: "bench", configDir: work });
  const link = await LimitedLink.start(primary.url, LINK_MIB_PER_SECOND * MiB);
  const started: ServerProcess[] = [];
  try {
    const on = await startFleet(work, "on", etcd.endpoint, link.url, true);
    started.push(...on);
    const off = await startFleet(work, "off", etcd.endpoint, link.url, false);
    started.push(...off);
    let blobs = 0;
    const freshBlob = async (): Promise<BlobFile> => {
      const blob = await makeBlobFile(join(work, `fleet-blob-${++blobs}`), BLOB_MIB * MiB);
      await pushBlob(primary.url, "bench/fleet", blob);
      return blob;
    };
    /** Seconds until every mirror given has pulled a fresh blob, and what crossed the link. */
    const rollout = async (mirrors: ServerProcess[]) => {
      const blob = await freshBlob();
      settle();
      const carried = link.carried;
      const begun = performance.now();
      await Promise.all(mirrors.map((m) => pullBlob(m.url, "bench/fleet", blob)));
      return { seconds: (performance.now() - begun) / 1000, blobs: (link.carried - carried) / blob.size };
    };
    const samples = { on: [] as number[], off: [] as number[], single: [] as number[], onEgress: [] as number[], offEgress: [] as number[] };
    for (let i = 0; i < ROUNDS; i++) {
      // Alternating who goes first, as the other measures do.
      for (const fleet of i % 2 === 0 ? [on, off] : [off, on]) {
        const result = await rollout(fleet);
        samples[fleet === on ? "on" : "off"].push(result.seconds);
        samples[fleet === on ? "onEgress" : "offEgress"].push(result.blobs);
      }
      samples.single.push((await rollout([off[i % MIRRORS] as ServerProcess])).seconds);
    }
    for (const [name, values] of Object.entries(samples)) log(`[fleet] ${name}: ${values.map((v) => v.toFixed(2)).join(", ")}`);
    return {
      mirrors: MIRRORS,
      linkMiBps: LINK_MIB_PER_SECOND,
      blobMiB: BLOB_MIB,
      rolloutSeconds: median(samples.on),
      rolloutSecondsWithoutSiblings: median(samples.off),
      singleSeconds: median(samples.single),
      primaryEgressBlobs: median(samples.onEgress),
      primaryEgressBlobsWithoutSiblings: median(samples.offEgress),
    };
  } finally {
    for (const server of started) await server.stop();
    await link.close();
    await primary.stop();
    await etcd.stop();
  }
}
