import { randomBytes } from "node:crypto";
import { CollectionBarrier } from "../../src/gc/barrier.js";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectGarbage } from "../../src/gc/collect.js";
import type { FenceTiming } from "../../src/gc/removal-fence.js";
import { FilesystemDriver } from "../../src/storage/filesystem.js";
import { gcPaths } from "../../src/gc/paths.js";
import { faultyDriver, type Faults } from "../helpers/faulty-driver.js";
import { call, errorCode, resolveLocation } from "../helpers/http.js";
import { pullsWhole, pushBlob, pushImage, randomImage, sha256, startUpload, type Image } from "../helpers/oci.js";
import { serveDriver, tempDir } from "../helpers/registry.js";
import { afterStoreTick, leftovers, storedBlobs } from "../helpers/store.js";

const MiB = 1024 * 1024;
const FENCE: FenceTiming = { pollMs: 5, freshMs: 15, quietMs: 300, noticeMs: 20, heartbeatMs: 5, maxGapMs: 250 };

/**
 * Faults a real disk cannot be made to give here on demand (EIO mid-write, on fsync, on rename),
 * injected at the driver boundary beneath a registry served as `serve` serves it: each is the
 * request's error, with a spec body naming the cause; nothing partial stays; what is stored keeps
 * pulling; and the same request succeeds once the fault is gone. The real faults (a full tmpfs, a
 * read-only remount, an S3 store stopped mid-upload) are in test/e2e/store-faults.test.ts.
 */
describe("a store that fails under a request (faults injected at the driver)", () => {
  let root: string;
  const faults: Faults = {};
  let server: Awaited<ReturnType<typeof serveDriver>>;
  let kept: Image;
  let counter = 0;
  const repo = () => `faults/r${++counter}`;

  beforeAll(async () => {
    root = await tempDir("lain-injected-");
    server = await serveDriver(faultyDriver(new FilesystemDriver(root), faults));
    kept = randomImage({ layers: 2 });
    await pushImage(server.url, "faults/kept", "v1", kept);
  });
  afterAll(async () => {
    await server.close();
    await rm(root, { recursive: true, force: true });
  });

  const expectKeptPulls = async () => expect(await pullsWhole(server.url, "faults/kept", "v1", kept)).toBe(true);

  /** The request failed as a store failure is told, and left the store as it was. */
  async function expectStoreFailure(reply: { status: number; text: string }, status: number, cause: string): Promise<void> {
    expect(reply.status, reply.text).toBe(status);
    expect(errorCode(reply as Parameters<typeof errorCode>[0])).toBe("UNAVAILABLE");
    expect(reply.text).toContain(cause);
    expect(await leftovers(root)).toEqual([]);
    await expectKeptPulls();
  }

  const monolithic = (name: string, data: Buffer) => call("POST", `${server.url}/v2/${name}/blobs/uploads/?digest=${sha256(data)}`, { body: data });

  it.each([
    ["EIO on the 2nd MiB of a monolithic upload", 503, "EIO", { write: { after: MiB, code: "EIO" } }],
    ["ENOSPC on the 2nd MiB of a monolithic upload", 507, "ENOSPC", { write: { after: MiB, code: "ENOSPC" } }],
    ["EIO on the fsync that commits it", 503, "EIO", { commit: "EIO" }],
    ["EIO on the rename that puts it in place", 503, "EIO", { move: "EIO" }],
  ] as const)("%s: %d naming %s, nothing kept, then the same push succeeds", async (_, status, cause, fault) => {
    const name = repo();
    const data = randomBytes(4 * MiB);
    Object.assign(faults, fault);
    await expectStoreFailure(await monolithic(name, data), status, cause);
    expect((await call("HEAD", `${server.url}/v2/${name}/blobs/${sha256(data)}`)).status).toBe(404);
    expect(await storedBlobs(root)).not.toContain(sha256(data));
    expect((await monolithic(name, data)).status).toBe(201);
    expect((await call("GET", `${server.url}/v2/${name}/blobs/${sha256(data)}`)).body.equals(data)).toBe(true);
  });

  it("EIO on a PATCH of a chunked upload: 503, the session gone with its bytes (the client starts again)", async () => {
    const name = repo();
    const data = randomBytes(3 * MiB);
    const location = await startUpload(server.url, name);
    const first = await call("PATCH", location, { headers: { "content-range": `0-${MiB - 1}` }, body: data.subarray(0, MiB) });
    expect(first.status).toBe(202);
    faults.write = { after: MiB / 2, code: "EIO" };
    const second = await call("PATCH", resolveLocation(server.url, first.headers.location), { body: Readable.from([data.subarray(MiB)]) });
    await expectStoreFailure(second, 503, "EIO");
    expect(errorCode(await call("GET", location))).toBe("BLOB_UPLOAD_UNKNOWN");
    await pushBlob(server.url, name, { mediaType: "application/octet-stream", digest: sha256(data), content: data });
  });

  it.each([
    ["the revision link", /_manifests\/revisions\//],
    ["the tag", /_manifests\/tags\/v1\/current\/link$/],
  ])("ENOSPC writing %s of a pushed manifest: 507, the manifest and tag nowhere to be seen, then the push succeeds", async (_, path) => {
    const name = repo();
    const image = randomImage({ layers: 1 });
    for (const blob of [image.config, ...image.layers]) await pushBlob(server.url, name, blob);
    faults.putContent = { path, code: "ENOSPC" };
    const put = () => call("PUT", `${server.url}/v2/${name}/manifests/v1`, { headers: { "content-type": image.manifest.mediaType }, body: image.manifest.content });
    await expectStoreFailure(await put(), 507, "ENOSPC");
    expect((await call("GET", `${server.url}/v2/${name}/manifests/v1`)).status).toBe(404);
    const tags = await call("GET", `${server.url}/v2/${name}/tags/list`);
    expect(tags.status === 404 || tags.json<{ tags: string[] }>().tags.length === 0).toBe(true);
    expect((await put()).status).toBe(201);
    expect((await call("GET", `${server.url}/v2/${name}/tags/list`)).json()).toEqual({ name, tags: ["v1"] });
  });

  it("ENOSPC writing a mount's link: 507, no blob in the target, then the mount succeeds", async () => {
    const name = repo();
    const layer = kept.layers[0]!.digest;
    faults.putContent = { path: /_layers\//, code: "ENOSPC" };
    const mount = () => call("POST", `${server.url}/v2/${name}/blobs/uploads/?mount=${layer}&from=faults/kept`);
    await expectStoreFailure(await mount(), 507, "ENOSPC");
    expect((await call("HEAD", `${server.url}/v2/${name}/blobs/${layer}`)).status).toBe(404);
    expect((await mount()).status).toBe(201);
  });

  it("ENOSPC writing the collector's marks: the collection fails, leaves no mark, and removes nothing", async () => {
    const garbage = randomBytes(1000);
    await pushBlob(server.url, repo(), { mediaType: "application/octet-stream", digest: sha256(garbage), content: garbage });
    await call("DELETE", `${server.url}/v2/faults/r${counter}/blobs/${sha256(garbage)}`);
    const driver = faultyDriver(new FilesystemDriver(root), { putContent: { path: /_gc\/marks\//, code: "ENOSPC" } });
    await afterStoreTick(driver);
    const before = await storedBlobs(root);
    await expect(collectGarbage(driver, { dryRun: false, deleteUntagged: false, delayMs: 0 }, new CollectionBarrier(driver, { fence: FENCE }))).rejects.toMatchObject({ code: "ENOSPC" });
    const marks = await readdir(join(root, gcPaths.marksRoot), { recursive: true, withFileTypes: true }).catch(() => []);
    expect(marks.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))).toEqual([]);
    expect(await storedBlobs(root)).toEqual(before);
    await expectKeptPulls();
  });
});
