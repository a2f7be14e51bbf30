import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startDistribution } from "../test/helpers/distribution.js";
import { call } from "../test/helpers/http.js";
import { METRICS_ON_MAIN_PORT, sample } from "../test/helpers/metrics.js";
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, sha256 } from "../test/helpers/oci.js";
import { freePort, startLainProcess, type ServerProcess } from "../test/helpers/process.js";
import { MiB, rssMiB, wrk } from "./load.js";

const SAMPLE_MS = 10_000;
const MANIFEST_ACCEPT = `${OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json`;
/** Issue 34's length of the soak; BENCH_SOAK_SECONDS makes it longer (1800 for half an hour). */
export const SOAK_SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 600);

export interface SoakSample {
  /** Seconds since the load started. */
  t: number;
  rssMiB: number;
  /** lain's V8 heap and external memory (distribution has neither). */
  heapUsedMiB?: number;
  externalMiB?: number;
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
  /** Access-log lines lain dropped rather than held (registry_log_lines_dropped_total). */
  droppedLogLines?: number;
}

/** One unique blob and an image manifest naming it, pushed monolithically then by tag. */
async function pushOne(base: string, n: number, pushed: string[]): Promise<void> {
  const layer = randomBytes(MiB);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", n }));
  for (const content of [config, layer]) {
    // POST then PUT, as distribution takes a push (it ignores a POST's body).
    const started = await call("POST", `${base}/v2/soak/app/blobs/uploads/`);
    const location = new URL(started.headers.location ?? "", base);
    location.searchParams.set("digest", sha256(content));
    const reply = await call("PUT", location.href, { body: content, headers: { "content-type": "application/octet-stream" } });
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

/** The soak of both registries, one after the other, each on its own store under `work`. */
export async function measureSoaks(work: string, seconds: number, log: (msg: string) => void): Promise<{ lain: SoakResult; distribution: SoakResult }> {
  const config = join(work, "soak.yml");
  await writeFile(config, ["version: 0.1", "log: {level: info}", `storage: {filesystem: {rootdirectory: ${join(work, "soak-lain")}}}`, "http:", "  secret: soak", METRICS_ON_MAIN_PORT].join("\n"));
  const lain = await soak(await startLainProcess(config, await freePort()), { work, seconds, nodeMetrics: true }, (msg) => log(`[soak lain] ${msg}`));
  await mkdir(join(work, "soak-distribution"));
  const distribution = await startDistribution({ root: join(work, "soak-distribution"), secret: "soak", configDir: work });
  return { lain, distribution: await soak(distribution, { work, seconds, nodeMetrics: false }, (msg) => log(`[soak distribution] ${msg}`)) };
}

/**
 * The soak (issue 34's load) of one registry, which it stops: for `seconds`, manifest GETs by tag
 * at c=16 (wrk), two pushers of unique 1 MiB blobs with their manifests, and a puller of random
 * pushed blobs, each checked byte for byte. The server's RSS (and lain's V8 heap and external
 * memory) are sampled every 10 s. Every loop ends at the deadline.
 */
async function soak(server: ServerProcess, options: { work: string; seconds: number; nodeMetrics: boolean }, log: (msg: string) => void): Promise<SoakResult> {
  const { seconds } = options;
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
      const s: SoakSample = { t: Math.round((Date.now() - started) / 1000), rssMiB: await rssMiB(pid) };
      if (options.nodeMetrics) {
        const metrics = (await call("GET", `${base}/metrics`)).text;
        s.heapUsedMiB = sample(metrics, "nodejs_heap_size_used_bytes") / MiB;
        s.externalMiB = sample(metrics, "nodejs_external_memory_bytes") / MiB;
      }
      samples.push(s);
      const v8 = options.nodeMetrics ? `, heap used ${s.heapUsedMiB?.toFixed(0)} MiB, external ${s.externalMiB?.toFixed(0)} MiB` : "";
      log(`${s.t} s: RSS ${s.rssMiB.toFixed(0)} MiB${v8}; ${pushes} pushes, ${pulls} pulls`);
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
    const gets = wrk(`${base}/v2/soak/app/manifests/v0`, { connections: 16, seconds, headers: { Accept: MANIFEST_ACCEPT }, scriptDir: options.work });
    const [manifests] = await Promise.all([gets, pusher(1), pusher(2), puller(), sampler]);
    const dropped = options.nodeMetrics ? sample((await call("GET", `${base}/metrics`)).text, "registry_log_lines_dropped_total") : undefined;
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
      ...(dropped === undefined ? {} : { droppedLogLines: dropped }),
    };
  } finally {
    await server.stop();
    await writeFile(join(options.work, `soak-${options.nodeMetrics ? "lain" : "distribution"}.log`), server.fullOutput());
  }
}
