import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { call } from "../test/helpers/http.js";
import { METRICS_ON_MAIN_PORT, sample } from "../test/helpers/metrics.js";
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, sha256 } from "../test/helpers/oci.js";
import { freePort, startLainProcess } from "../test/helpers/process.js";
import { MiB, rssMiB, wrk } from "./load.js";

const SAMPLE_MS = 10_000;
const MANIFEST_ACCEPT = `${OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json`;

export interface SoakSample {
  /** Seconds since the load started. */
  t: number;
  rssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
}

export interface SoakResult {
  seconds: number;
  samples: SoakSample[];
  /** The highest RSS of the first and of the last third of the run (after the first sample). */
  firstThirdMiB: number;
  lastThirdMiB: number;
  maxMiB: number;
  pushes: number;
  pulls: number;
  manifestRps: number;
  errors: number;
}

/** One unique blob and an image manifest naming it, pushed monolithically then by tag. */
async function pushOne(base: string, n: number, pushed: string[]): Promise<void> {
  const layer = randomBytes(MiB);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", n }));
  for (const content of [config, layer]) {
    const reply = await call("POST", `${base}/v2/soak/app/blobs/uploads/?digest=${sha256(content)}`, { body: content });
    if (reply.status !== 201) throw new Error(`push: ${reply.status} ${reply.text}`);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: [{ mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length }],
    }),
  );
  const put = await call("PUT", `${base}/v2/soak/app/manifests/v${n}`, { headers: { "content-type": OCI_MANIFEST }, body: manifest });
  if (put.status !== 201) throw new Error(`manifest: ${put.status} ${put.text}`);
  pushed.push(sha256(layer));
}

/**
 * The soak (issue 34's load): one filesystem registry, for `seconds`, under manifest GETs by tag
 * at c=16 (wrk), two pushers of unique 1 MiB blobs with their manifests, and a puller of random
 * pushed blobs, each checked byte for byte. The server's RSS, V8 heap and external memory are
 * sampled every 10 s. Every loop ends at the deadline.
 */
export async function measureSoak(work: string, seconds: number, log: (msg: string) => void): Promise<SoakResult> {
  const config = join(work, "soak.yml");
  await writeFile(config, ["version: 0.1", "log: {level: info}", `storage: {filesystem: {rootdirectory: ${join(work, "soak-store")}}}`, "http:", "  secret: soak", METRICS_ON_MAIN_PORT].join("\n"));
  const server = await startLainProcess(config, await freePort());
  const base = server.url;
  const pid = server.child.pid ?? 0;
  const pushed: string[] = [];
  let pushes = 0;
  let pulls = 0;
  let errors = 0;
  const samples: SoakSample[] = [];
  try {
    await pushOne(base, 0, pushed);
    const started = Date.now();
    const deadline = started + seconds * 1000;
    const measure = async () => {
      const metrics = (await call("GET", `${base}/metrics`)).text;
      const s: SoakSample = {
        t: Math.round((Date.now() - started) / 1000),
        rssMiB: await rssMiB(pid),
        heapUsedMiB: sample(metrics, "nodejs_heap_size_used_bytes") / MiB,
        externalMiB: sample(metrics, "nodejs_external_memory_bytes") / MiB,
      };
      samples.push(s);
      log(`[soak] ${s.t} s: RSS ${s.rssMiB.toFixed(0)} MiB, heap used ${s.heapUsedMiB.toFixed(0)} MiB, external ${s.externalMiB.toFixed(0)} MiB; ${pushes} pushes, ${pulls} pulls`);
    };
    const sampler = (async () => {
      while (Date.now() < deadline) {
        await measure();
        await new Promise((r) => setTimeout(r, Math.min(SAMPLE_MS, Math.max(0, deadline - Date.now()))));
      }
      await measure();
    })();
    const pusher = async (offset: number) => {
      for (let n = offset; Date.now() < deadline; n += 2) {
        await pushOne(base, n, pushed).then(() => pushes++, () => errors++);
      }
    };
    const puller = async () => {
      while (Date.now() < deadline) {
        const digest = pushed[Math.floor(Math.random() * pushed.length)] as string;
        const reply = await call("GET", `${base}/v2/soak/app/blobs/${digest}`).catch(() => undefined);
        if (reply?.status === 200 && sha256(reply.body) === digest) pulls++;
        else errors++;
      }
    };
    const gets = wrk(`${base}/v2/soak/app/manifests/v0`, { connections: 16, seconds, headers: { Accept: MANIFEST_ACCEPT }, scriptDir: work });
    const [manifests] = await Promise.all([gets, pusher(1), pusher(2), puller(), sampler]);
    const tail = samples.slice(1);
    const third = Math.max(1, Math.floor(tail.length / 3));
    const highest = (list: SoakSample[]) => Math.max(...list.map((s) => s.rssMiB));
    return {
      seconds,
      samples,
      firstThirdMiB: highest(tail.slice(0, third)),
      lastThirdMiB: highest(tail.slice(-third)),
      maxMiB: highest(samples),
      pushes,
      pulls,
      manifestRps: manifests.rps,
      errors,
    };
  } finally {
    await server.stop();
    await writeFile(join(work, "soak-server.log"), server.fullOutput());
  }
}
