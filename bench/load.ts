import { execFile, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { request } from "undici";
import { once } from "node:events";
import { promisify } from "node:util";
import { binNodeFlags, freePort, startServerProcess, type ServerProcess } from "../test/helpers/process.js";

const run = promisify(execFile);
export const MiB = 1024 * 1024;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** Flushes dirty pages (the test blob, the previous phase) so no phase pays for another's writes. */
export function settle(): void {
  execFileSync("sync");
}

/** Dirty and writeback pages of the whole machine, in KiB. */
async function unwrittenKiB(): Promise<number> {
  const meminfo = await readFile("/proc/meminfo", "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(meminfo)?.[1] ?? 0);
  return field("Dirty") + field("Writeback");
}

/**
 * Before a push round: flushes dirty pages, drops the page cache where this user may (root), and
 * waits (at most 10 s) until the disk has written back what is pending, so that the second
 * registry to push does not pay for the first one's writeback; then reads `warm` back in.
 */
export async function settleWriteback(warm: string[] = []): Promise<void> {
  settle();
  await writeFile("/proc/sys/vm/drop_caches", "3").catch(() => undefined);
  for (let i = 0; i < 100 && (await unwrittenKiB()) > 4096; i++) await new Promise((r) => setTimeout(r, 100));
  // What the client sends is read back into the cache: the push, not the disk's reads, is measured.
  for (const file of warm) await run("dd", [`if=${file}`, "of=/dev/null", "bs=1M"]);
}

/** What the disk takes: `dd conv=fdatasync` of the blob into `dir`, MiB/s (the push's ceiling). */
export async function ddFdatasyncMiBps(blob: BlobFile, dir: string): Promise<number> {
  const out = join(dir, "dd.out");
  await settleWriteback([blob.path]);
  const started = process.hrtime.bigint();
  await run("dd", [`if=${blob.path}`, `of=${out}`, "bs=1M", "conv=fdatasync"]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await rm(out, { force: true });
  return blob.size / MiB / seconds;
}

/** CPU seconds (user and system, all threads) a process has used so far. */
export async function cpuSeconds(pid: number): Promise<number> {
  // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** sysconf(_SC_CLK_TCK) on Linux. */
const CLOCK_TICKS = 100;

export interface BlobFile {
  path: string;
  size: number;
  digest: string;
}

/** A file of random bytes and its digest, written in 1 MiB chunks. */
export async function makeBlobFile(path: string, size: number): Promise<BlobFile> {
  const hash = createHash("sha256");
  const out = createWriteStream(path);
  for (let written = 0; written < size; written += MiB) {
    const chunk = randomBytes(Math.min(MiB, size - written));
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  return { path, size, digest: `sha256:${hash.digest("hex")}` };
}

/** How long a transfer took, and how long until its first byte arrived, in seconds. */
export interface CurlTimes {
  seconds: number;
  firstByteSeconds: number;
}

/** Runs curl (a client fast enough not to be what is measured), expecting `expectStatus`. */
async function curlTimes(args: string[], expectStatus: number): Promise<CurlTimes> {
  const { stdout } = await run("curl", ["-s", "-o", "/dev/null", "-H", "Expect:", "-w", "%{http_code} %{time_total} %{time_starttransfer}", ...args], {
    timeout: 300_000,
  });
  const [status, seconds, firstByte] = stdout.trim().split(" ");
  if (Number(status) !== expectStatus) throw new Error(`curl ${args.join(" ")}: HTTP ${status}`);
  return { seconds: Number(seconds), firstByteSeconds: Number(firstByte) };
}

async function curlSeconds(args: string[], expectStatus: number): Promise<number> {
  return (await curlTimes(args, expectStatus)).seconds;
}

/** POST a session, then PUT the whole blob with ?digest= (the API's monolithic upload). Seconds of the PUT. */
export async function pushBlob(base: string, repo: string, blob: BlobFile): Promise<number> {
  const started = await request(`${base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await started.body.dump();
  if (started.statusCode !== 202) throw new Error(`POST ${started.statusCode}`);
  const location = new URL(String(started.headers.location), base);
  location.searchParams.set("digest", blob.digest);
  return curlSeconds(["-X", "PUT", "-H", "Content-Type: application/octet-stream", "-T", blob.path, location.toString()], 201);
}

/** The blob in `count` files of equal size (the last one shorter), for chunked pushes. */
export async function splitBlob(blob: BlobFile, count: number): Promise<string[]> {
  const size = Math.ceil(blob.size / count);
  const prefix = `${blob.path}.chunk`;
  await run("split", ["-b", String(size), "-d", "-a", "2", blob.path, prefix]);
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(2, "0")}`);
}

/** POST a session, PATCH each chunk with its Content-Range, then PUT ?digest= with no body. Seconds from the first PATCH. */
export async function pushBlobChunked(base: string, repo: string, blob: BlobFile, chunks: string[]): Promise<number> {
  const started = await request(`${base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await started.body.dump();
  if (started.statusCode !== 202) throw new Error(`POST ${started.statusCode}`);
  let location = new URL(String(started.headers.location), base);
  const t0 = process.hrtime.bigint();
  let offset = 0;
  for (const chunk of chunks) {
    const size = (await stat(chunk)).size;
    const { stdout } = await run(
      "curl",
      ["-s", "-o", "/dev/null", "-H", "Expect:", "-X", "PATCH", "-H", "Content-Type: application/octet-stream", "-H", `Content-Range: ${offset}-${offset + size - 1}`, "-T", chunk, "-w", "%{http_code} %header{location}", location.toString()],
      { timeout: 300_000 },
    );
    const [status, next] = stdout.trim().split(" ");
    if (status !== "202" || !next) throw new Error(`PATCH: HTTP ${status}`);
    location = new URL(next, base);
    offset += size;
  }
  location.searchParams.set("digest", blob.digest);
  const done = await request(location, { method: "PUT" });
  await done.body.dump();
  if (done.statusCode !== 201) throw new Error(`PUT: HTTP ${done.statusCode}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** GET the blob (following a redirect to the store), discarding the bytes. */
export function pullBlobTimes(base: string, repo: string, blob: BlobFile): Promise<CurlTimes> {
  return curlTimes(["-L", `${base}/v2/${repo}/blobs/${blob.digest}`], 200);
}

/** Seconds of a pullBlobTimes. */
export async function pullBlob(base: string, repo: string, blob: BlobFile): Promise<number> {
  return (await pullBlobTimes(base, repo, blob)).seconds;
}

/**
 * What loopback TCP carries, MiB/s: a separate process serves `size` bytes from memory over
 * plain HTTP and curl fetches them, so a pull can be compared with the wire's own ceiling.
 */
export async function loopbackMiBps(size: number): Promise<number> {
  const script = `
    const http = require("node:http");
    const chunk = require("node:crypto").randomBytes(${MiB});
    const server = http.createServer((req, res) => {
      res.setHeader("content-length", ${size});
      let sent = 0;
      const pump = () => { while (sent < ${size}) { sent += chunk.length; if (!res.write(chunk)) return res.once("drain", pump); } res.end(); };
      pump();
    }).listen(0, "127.0.0.1", () => process.stdout.write(String(server.address().port)));`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const [line] = (await once(child.stdout, "data")) as [Buffer];
    const url = `http://127.0.0.1:${line.toString().trim()}/`;
    const seconds = Math.min(await curlSeconds([url], 200), await curlSeconds([url], 200));
    return size / MiB / seconds;
  } finally {
    child.kill();
  }
}

/** bench/node-floor.ts as its own process, with the CLI's node flags, storing under `root`. */
export async function startNodeFloor(root: string): Promise<ServerProcess> {
  const port = await freePort();
  const script = new URL("./node-floor.ts", import.meta.url).pathname;
  return startServerProcess(process.execPath, [...binNodeFlags(), script, String(port), root], port, process.env);
}

export interface WrkResult {
  rps: number;
  p99ms: number;
}

function toMs(value: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(value.trim());
  if (!match) return Number.NaN;
  const n = Number(match[1]);
  return match[2] === "us" ? n / 1000 : match[2] === "s" ? n * 1000 : n;
}

/** wrk with `connections` keep-alive connections for `seconds`; requests/s and p99 latency. */
export async function wrk(url: string, options: { connections: number; seconds: number; headers?: Record<string, string>; scriptDir: string }): Promise<WrkResult> {
  const script = `${options.scriptDir}/wrk.lua`;
  const headerLines = Object.entries(options.headers ?? {}).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`);
  await writeFile(script, headerLines.join("\n"));
  const { stdout } = await run("wrk", ["-t2", `-c${options.connections}`, `-d${options.seconds}s`, "--latency", "-s", script, url], {
    timeout: (options.seconds + 30) * 1000,
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p99 = /\s99%\s+([\d.]+\w+)/.exec(stdout)?.[1] ?? "";
  const errors = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1];
  if (errors) throw new Error(`wrk saw ${errors} error responses on ${url}`);
  return { rps, p99ms: toMs(p99) };
}

/**
 * ApacheBench for HEAD requests (wrk 4.1 waits for a body after a HEAD response and never
 * completes one): `connections` keep-alive clients for `seconds`.
 */
export async function abHead(url: string, options: { connections: number; seconds: number }): Promise<WrkResult> {
  const { stdout } = await run("ab", ["-i", "-k", "-q", `-c${options.connections}`, `-t${options.seconds}`, "-n", "10000000", url], {
    timeout: (options.seconds + 30) * 1000,
  });
  const failed = Number(/Failed requests:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  if (failed + non2xx > 0) throw new Error(`ab saw ${failed} failed and ${non2xx} non-2xx responses on ${url}`);
  return {
    rps: Number(/Requests per second:\s+([\d.]+)/.exec(stdout)?.[1]),
    p99ms: Number(/\s99%\s+(\d+)/.exec(stdout)?.[1]),
  };
}

async function statusMiB(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1]);
  if (!Number.isFinite(kb)) throw new Error(`no ${field} for process ${pid}`);
  return kb / 1024;
}

/**
 * The peak resident set of a process that exits while `work` runs (its high-water mark goes with
 * it): sampled every 20 ms, in MiB.
 */
export async function sampledPeakRss(pid: number, work: () => Promise<unknown>): Promise<number> {
  let peak = 0;
  const sample = async () => {
    peak = Math.max(peak, await statusMiB(pid, "VmRSS").catch(() => 0));
  };
  const timer = setInterval(() => void sample(), 20);
  try {
    await sample();
    await work();
  } finally {
    clearInterval(timer);
  }
  return peak;
}

/** A process's resident set now, in MiB. */
export function rssMiB(pid: number): Promise<number> {
  return statusMiB(pid, "VmRSS");
}

/**
 * A process's peak resident set while `work` runs, in MiB: the kernel's high-water mark, reset
 * first (clear_refs 5), so no short peak falls between two samples.
 */
export async function peakRssDuring(pid: number, work: () => Promise<unknown>): Promise<number> {
  await writeFile(`/proc/${pid}/clear_refs`, "5");
  await work();
  return statusMiB(pid, "VmHWM");
}
