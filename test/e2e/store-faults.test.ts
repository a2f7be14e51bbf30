import { ListMultipartUploadsCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, rm, statfs, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Client } from "../../src/storage/s3.js";
import { call, errorCode, resolveLocation } from "../helpers/http.js";
import { METRICS_ON_MAIN_PORT, scrape } from "../helpers/metrics.js";
import { pullsWhole, pushBlob, pushImage, randomImage, sha256, startUpload, writeOciLayout, type Image } from "../helpers/oci.js";
import { freePort, startLainProcess, type ServerProcess } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { RGW_TOOLS, startRgw, type RunningRgw } from "../helpers/rgw.js";
import { s3StorageYaml, s3TestOptions } from "../helpers/s3.js";
import { skopeo } from "../helpers/skopeo.js";
import { leftovers, storedBlobs } from "../helpers/store.js";
import { fillUp, mountTmpfs, unmount } from "../helpers/tmpfs.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const LAST_RESORT = /this is a bug of lain-registry/;

/** Whether this machine can mount a tmpfs (root): with REQUIRE_INTEGRATION=1 it must. */
async function canMount(dir: string): Promise<boolean> {
  try {
    await mountTmpfs(dir, "1m");
    unmount(dir);
    return true;
  } catch (err) {
    if (process.env.REQUIRE_INTEGRATION === "1") throw err;
    return false;
  }
}

interface Curled {
  status: number;
  text: string;
}

/**
 * curl as a pushing client: the body from a file, with its length (and `Expect: 100-continue`,
 * as curl sends for a large body) or chunked, with none.
 */
async function curl(method: string, url: string, file: string, declare: "length" | "chunked"): Promise<Curled> {
  const out = `${file}.reply`;
  const headers = declare === "chunked" ? ["-H", "Transfer-Encoding: chunked"] : ["-H", "Expect: 100-continue"];
  const { stdout } = await run("curl", ["-s", "-X", method, "-o", out, "-w", "%{http_code}", "-H", "content-type: application/octet-stream", ...headers, "--data-binary", `@${file}`, url]);
  const text = await readFile(out, "utf8").catch(() => "");
  await rm(out, { force: true });
  return { status: Number(stdout), text };
}

/** What the registry logged of a request: its access log line (written within a second). */
async function accessLine(server: ServerProcess, uri: RegExp, status: number): Promise<{ bytesIn: number }> {
  let found: { bytesIn: number } | undefined;
  await until(() => {
    found = server
      .fullOutput()
      .split("\n")
      .filter((l) => l.includes('"response completed"'))
      .map((l) => JSON.parse(l) as { "http.request.uri": string; "http.response.status": number; bytesIn: number })
      .find((l) => uri.test(l["http.request.uri"]) && l["http.response.status"] === status);
    return found !== undefined;
  }, `the access log line of ${uri}`, 5_000);
  return found!;
}

/**
 * A filesystem store on a small tmpfs, filled up for real, and remounted read-only, under a
 * registry process: each fault gets the faulting client a clear error, the process lives (its
 * last resort never speaks), no partial data stays, every stored image pulls byte for byte, and
 * the same push succeeds once the fault is gone.
 */
describe("store faults on a real disk: a full tmpfs, a read-only remount", async () => {
  const work = await tempDir("lain-store-faults-");
  const mountable = await canMount(join(work, "probe"));
  const store = join(work, "store");
  let registry: ServerProcess;
  let kept: Image;

  beforeAll(async () => {
    if (!mountable) return;
    // Room for every push of the cells below; each fault fills it up with a ballast of its own.
    await mountTmpfs(store, "128m");
    const config = join(work, "registry.yml");
    await writeFile(
      config,
      ["version: 0.1", "log: {level: info, formatter: json}", `storage: {filesystem: {rootdirectory: ${store}}, delete: {enabled: true}}`, "http:", "  secret: s", METRICS_ON_MAIN_PORT].join("\n"),
    );
    registry = await startLainProcess(config, await freePort());
    kept = randomImage({ layers: 2, layerSize: 256 * 1024 });
    await pushImage(registry.url, "faults/kept", "v1", kept);
  });
  afterAll(async () => {
    await registry?.stop();
    if (mountable) unmount(store);
    await rm(work, { recursive: true, force: true });
  });

  const expectKeptPulls = async () => expect(await pullsWhole(registry.url, "faults/kept", "v1", kept)).toBe(true);

  /** Runs a fault with the store filled up to `freeMiB` free, then makes the room again. */
  async function whileFull(freeMiB: number, fault: () => Promise<void>): Promise<void> {
    const release = await fillUp(store, freeMiB);
    try {
      await fault();
    } finally {
      await release();
    }
  }

  /** The process alive, its last resort silent, nothing partial left, the stored image whole. */
  async function expectUnharmed(): Promise<void> {
    expect(registry.child.exitCode).toBeNull();
    expect(registry.fullOutput()).not.toMatch(LAST_RESORT);
    expect(await leftovers(store)).toEqual([]);
    await expectKeptPulls();
  }

  const blobFile = async (name: string, size: number) => {
    const content = randomBytes(size);
    const file = join(work, name);
    await writeFile(file, content);
    return { file, digest: sha256(content), content };
  };

  it.skipIf(!mountable)("a monolithic push the disk cannot hold (no declared length): 507 naming ENOSPC, then /health and the metrics say the store is full", async () => {
    const blob = await blobFile("mono", 16 * MiB);
    await whileFull(6, async () => {
      const reply = await curl("POST", `${registry.url}/v2/faults/mono/blobs/uploads/?digest=${blob.digest}`, blob.file, "chunked");
      expect(reply.status).toBe(507);
      expect(reply.text).toContain("storage is full (ENOSPC)");
      await expectUnharmed();
      const health = await call("GET", `${registry.url}/health`);
      expect(health.status).toBe(200);
      expect(health.json()).toMatchObject({ status: "degraded", storage: { reachable: true, error: expect.stringContaining("storage full: a write failed for lack of space") } });
      const metric = await scrape(`${registry.url}/metrics`);
      const volume = await statfs(store);
      expect(metric("registry_storage_full")).toBe(1);
      expect(metric("registry_storage_size_bytes")).toBe(volume.blocks * volume.bsize);
      expect(metric("registry_storage_free_bytes")).toBe(volume.bavail * volume.bsize);
    });
    expect((await curl("POST", `${registry.url}/v2/faults/mono/blobs/uploads/?digest=${blob.digest}`, blob.file, "chunked")).status).toBe(201);
    expect((await call("GET", `${registry.url}/v2/faults/mono/blobs/${blob.digest}`)).body.equals(blob.content)).toBe(true);
    expect((await scrape(`${registry.url}/metrics`))("registry_storage_full")).toBe(0);
    // /health looks again once its last look (2 s) is stale.
    await until(async () => (await call("GET", `${registry.url}/health`)).json<{ status: string }>().status === "ok", "/health to be ok again");
  });

  it.skipIf(!mountable)("skopeo pushing to a full disk is told 507 every time (not a broken pipe), then pushes once there is room", async () => {
    const image = randomImage({ layers: 1, layerSize: 16 * MiB });
    const layout = join(work, "skopeo-image");
    await writeOciLayout(layout, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    const push = () => skopeo("copy", `oci:${layout}:v1`, `docker://${registry.host}/faults/skopeo:v1`).then(() => "pushed", (err: Error) => err.message);
    await whileFull(6, async () => {
      // skopeo streams each layer as one chunked PATCH and asks every connection to close.
      for (let i = 0; i < 5; i++) expect(await push()).toContain("507 Insufficient Storage");
      await expectUnharmed();
    });
    expect(await push()).toBe("pushed");
  });

  it.skipIf(!mountable)("a push whose declared length cannot fit: 507 before its body is read", async () => {
    const blob = await blobFile("declared", 16 * MiB);
    await whileFull(6, async () => {
      const location = await startUpload(registry.url, "faults/declared");
      const put = new URL(location);
      put.searchParams.set("digest", blob.digest);
      const reply = await curl("PUT", put.toString(), blob.file, "length");
      expect(reply.status).toBe(507);
      expect(reply.text).toContain("this upload brings 16777216");
      // The client waited for 100 Continue, which never came: the body never crossed.
      expect((await accessLine(registry, /^\/v2\/faults\/declared\/blobs\/uploads\//, 507)).bytesIn).toBeLessThan(64 * 1024);
      expect(errorCode(await call("GET", location))).toBe("BLOB_UPLOAD_UNKNOWN");
      await expectUnharmed();
    });
    await pushBlob(registry.url, "faults/declared", { mediaType: "application/octet-stream", digest: blob.digest, content: blob.content });
  });

  it.skipIf(!mountable)("a chunked push (PATCHes) that overflows: 507, its session gone with the bytes it had", async () => {
    const blob = await blobFile("chunked", 12 * MiB);
    await whileFull(8, async () => {
      const location = await startUpload(registry.url, "faults/chunked");
      const first = await call("PATCH", location, { headers: { "content-range": `0-${4 * MiB - 1}` }, body: blob.content.subarray(0, 4 * MiB) });
      expect(first.status).toBe(202);
      await writeFile(`${blob.file}.rest`, blob.content.subarray(4 * MiB));
      const second = await curl("PATCH", resolveLocation(registry.url, first.headers.location), `${blob.file}.rest`, "chunked");
      expect(second.status).toBe(507);
      expect(second.text).toContain("ENOSPC");
      expect(errorCode(await call("GET", location))).toBe("BLOB_UPLOAD_UNKNOWN");
      await expectUnharmed();
    });
    await pushBlob(registry.url, "faults/chunked", { mediaType: "application/octet-stream", digest: blob.digest, content: blob.content });
  });

  it.skipIf(!mountable)("a manifest PUT, a tag and a mount on a disk with no room: 507 each, none of them visible, each succeeding once there is room", async () => {
    const image = randomImage({ layers: 1 });
    for (const blob of [image.config, ...image.layers]) await pushBlob(registry.url, "faults/manifest", blob);
    const put = (reference: string) =>
      call("PUT", `${registry.url}/v2/faults/manifest/manifests/${reference}`, { headers: { "content-type": image.manifest.mediaType }, body: image.manifest.content });
    const mount = () => call("POST", `${registry.url}/v2/faults/mounted/blobs/uploads/?mount=${kept.layers[0]!.digest}&from=faults/kept`);
    const attempts: Array<[string, () => Promise<{ status: number; text: string }>, () => Promise<number>]> = [
      ["manifest by digest", () => put(image.manifest.digest), async () => (await call("GET", `${registry.url}/v2/faults/manifest/manifests/${image.manifest.digest}`)).status],
      ["tag", () => put("v1"), async () => (await call("GET", `${registry.url}/v2/faults/manifest/manifests/v1`)).status],
      ["mount", mount, async () => (await call("HEAD", `${registry.url}/v2/faults/mounted/blobs/${kept.layers[0]!.digest}`)).status],
    ];
    for (const [what, attempt, visible] of attempts) {
      await whileFull(0, async () => {
        const reply = await attempt();
        expect(reply.status, what).toBe(507);
        expect(reply.text).toContain("ENOSPC");
        expect(await visible(), what).toBe(404);
        await expectUnharmed();
      });
      expect((await attempt()).status, what).toBe(201);
      expect(await visible(), what).toBe(200);
    }
  });

  it.skipIf(!mountable)("a mirror whose store is full: its client still gets the blob whole, the store keeps none of it, then caches it once there is room", async () => {
    const mirrorStore = join(work, "mirror-store");
    await mountTmpfs(mirrorStore, "16m");
    let mirror: ServerProcess | undefined;
    try {
      const config = join(work, "mirror.yml");
      await writeFile(config, ["version: 0.1", "log: {level: info, formatter: json}", `storage: {filesystem: {rootdirectory: ${mirrorStore}}}`, "http: {secret: s}", `proxy: {remoteurl: ${registry.url}, spooldir: ${join(work, "spool")}}`].join("\n"));
      mirror = await startLainProcess(config, await freePort());
      const blob = await blobFile("mirrored", 8 * MiB);
      await pushBlob(registry.url, "faults/mirrored", { mediaType: "application/octet-stream", digest: blob.digest, content: blob.content });
      const release = await fillUp(mirrorStore, 1);
      try {
        const got = await call("GET", `${mirror.url}/v2/faults/mirrored/blobs/${blob.digest}`);
        expect(got.status).toBe(200);
        expect(got.body.equals(blob.content)).toBe(true);
        expect(await storedBlobs(mirrorStore)).not.toContain(blob.digest);
        await until(async () => (await readdir(mirrorStore, { recursive: true })).every((e) => !/_uploads\/[0-9a-f-]{36}$/.test(e)), "the mirror's fill to leave no session");
        expect(mirror.child.exitCode).toBeNull();
        expect(mirror.fullOutput()).not.toMatch(LAST_RESORT);
      } finally {
        await release();
      }
      expect((await call("GET", `${mirror.url}/v2/faults/mirrored/blobs/${blob.digest}`)).body.equals(blob.content)).toBe(true);
      await until(async () => (await storedBlobs(mirrorStore)).includes(blob.digest), "the mirror to cache the blob once there is room");
    } finally {
      await mirror?.stop();
      unmount(mirrorStore);
    }
  });

  it.skipIf(!mountable)("the store remounted read-only between two PATCHes: 503 naming EROFS; remounted writable, the session goes and the push succeeds", async () => {
    const blob = await blobFile("readonly", 4 * MiB);
    const location = await startUpload(registry.url, "faults/readonly");
    const first = await call("PATCH", location, { headers: { "content-range": `0-${2 * MiB - 1}` }, body: blob.content.subarray(0, 2 * MiB) });
    expect(first.status).toBe(202);
    await run("mount", ["-o", "remount,ro", store]);
    try {
      const second = await call("PATCH", resolveLocation(registry.url, first.headers.location), { body: blob.content.subarray(2 * MiB) });
      expect(second.status).toBe(503);
      expect(second.text).toContain("storage failed (EROFS)");
      await expectKeptPulls();
    } finally {
      await run("mount", ["-o", "remount,rw", store]);
    }
    await until(async () => (await leftovers(store)).length === 0, "the failed session to be removed once the store takes writes again", 30_000);
    await expectUnharmed();
    await pushBlob(registry.url, "faults/readonly", { mediaType: "application/octet-stream", digest: blob.digest, content: blob.content });
  });

  it.skipIf(!mountable)("below storage.filesystem.minfree (10% by default): /health is degraded, saying the store runs low", async () => {
    await whileFull(3, async () => {
      const health = await call("GET", `${registry.url}/health`);
      expect(health.status).toBe(200);
      expect(health.json()).toMatchObject({ status: "degraded", storage: { error: expect.stringContaining("storage low") } });
    });
    await until(async () => (await call("GET", `${registry.url}/health`)).json<{ status: string }>().status === "ok", "/health to be ok again");
  });
});

/**
 * Ceph's RADOS Gateway stopped while a push streams into a multipart upload, then started again:
 * the push gets a clean 503, the registry lives, the upload's parts and session go once the
 * store answers, and the same push then succeeds. (A gateway of its own: stopping the run's
 * shared one would fail other suites.)
 */
describe.skipIf(!RGW_TOOLS.every(hasTool) || !hasTool("curl"))("store faults on S3: the gateway stopped mid multipart upload", () => {
  let work: string;
  let rgw: RunningRgw;
  let registry: ServerProcess;
  let bucket: string;
  let kept: Image;

  beforeAll(async () => {
    work = await tempDir("lain-s3-outage-");
    rgw = await startRgw({ memoryBytes: 1024 * MiB });
    bucket = `outage-${randomBytes(4).toString("hex")}`;
    const client = createS3Client(s3TestOptions(rgw, bucket));
    await client.send(new (await import("@aws-sdk/client-s3")).CreateBucketCommand({ Bucket: bucket }));
    client.destroy();
    const config = join(work, "registry.yml");
    await writeFile(config, ["version: 0.1", "log: {level: info, formatter: json}", "storage:", s3StorageYaml(rgw, bucket), "  redirect: {disable: true}", "http: {secret: s}"].join("\n"));
    registry = await startLainProcess(config, await freePort());
    kept = randomImage({ layers: 1 });
    await pushImage(registry.url, "faults/kept", "v1", kept);
  }, 180_000);
  afterAll(async () => {
    await registry?.stop();
    await rgw?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** The upload objects and unfinished multipart uploads under the repository's sessions. */
  async function sessionsInBucket(): Promise<number> {
    const client = createS3Client(s3TestOptions(rgw, bucket));
    try {
      const prefix = "registry/docker/registry/v2/repositories/faults/outage/_uploads/";
      const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
      return (objects.Contents?.length ?? 0) + (uploads.Uploads?.length ?? 0);
    } finally {
      client.destroy();
    }
  }

  it("503 naming the store's failure, the upload gone once the store is back, then the push succeeds", async () => {
    const content = randomBytes(24 * MiB);
    const digest = sha256(content);
    const location = await startUpload(registry.url, "faults/outage");
    // curl streams the body from its stdin, chunked, as the test feeds it.
    const client = spawn("curl", ["-s", "-X", "PATCH", "-T", "-", "-w", "\n%{http_code}", "-H", "content-type: application/octet-stream", location], { stdio: ["pipe", "pipe", "ignore"] });
    let answer = "";
    client.stdout.on("data", (c: Buffer) => (answer += c.toString()));
    const exited = new Promise<void>((resolve) => client.once("exit", () => resolve()));
    client.stdin.on("error", () => undefined);
    client.stdin.write(content.subarray(0, 12 * MiB));
    // Two parts (5 MiB each) are in the store by now.
    await until(async () => (await sessionsInBucket()) > 0, "the multipart upload to start");
    await new Promise((r) => setTimeout(r, 1000));
    await rgw.stopGateway();
    try {
      client.stdin.end(content.subarray(12 * MiB));
      await exited;
      const status = Number(answer.trim().split("\n").pop());
      expect(status).toBe(503);
      expect(answer).toContain("storage failed");
      expect(registry.child.exitCode).toBeNull();
    } finally {
      await rgw.startGateway();
    }
    await until(async () => (await sessionsInBucket()) === 0, "the failed upload's parts and session to be removed once the store is back", 90_000);
    expect(registry.fullOutput()).not.toMatch(LAST_RESORT);
    const manifest = await call("GET", `${registry.url}/v2/faults/kept/manifests/v1`, { headers: { accept: kept.manifest.mediaType } });
    expect(manifest.body.equals(kept.manifest.content)).toBe(true);
    await pushBlob(registry.url, "faults/outage", { mediaType: "application/octet-stream", digest, content });
    expect((await call("GET", `${registry.url}/v2/faults/outage/blobs/${digest}`)).body.equals(content)).toBe(true);
  }, 180_000);
});
