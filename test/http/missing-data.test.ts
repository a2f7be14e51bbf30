import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Digest } from "../../src/registry/digest.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
import { layout } from "../../src/registry/layout.js";
import { call, errorCode } from "../helpers/http.js";
import { METRICS_ON_MAIN_PORT, untilCacheVouches } from "../helpers/metrics.js";
import { artifactFor, indexOf, pushBlob, pushImage, randomImage, startUpload, type Image } from "../helpers/oci.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";

/**
 * A store that lost files behind the registry's back (a disk error, an operator's rm, a
 * collector of another program): every request meets the gap as a spec 404, never a 500.
 */
let root: string;
let plain: TestRegistry;
let cached: TestRegistry;

beforeAll(async () => {
  root = await tempDir("lain-missing-");
  plain = await startTestRegistry({ root });
  cached = await startTestRegistry({
    root,
    storageYaml: `  filesystem: {rootdirectory: ${root}}\n  cache: {blobdescriptor: inmemory}`,
    extraYaml: METRICS_ON_MAIN_PORT,
  });
});
afterAll(async () => {
  await plain.close();
  await cached.close();
  await rm(root, { recursive: true, force: true });
});

const file = (path: string) => join(root, path);
const repo = (name: string) => name as RepositoryName;

async function pushed(name: string, tag = "v1"): Promise<Image> {
  const image = randomImage({ layers: 2, layerSize: 1000 });
  await pushImage(plain.url, name, tag, image);
  return image;
}

function expectSpec404(reply: { status: number; headers: Record<string, string> }, code: string | undefined, expected: string): void {
  expect(reply.status).toBe(404);
  expect(code).toBe(expected);
  // A 404 is not content: none of a blob's cache headers.
  expect(reply.headers.etag).toBeUndefined();
  expect(reply.headers["cache-control"]).toBeUndefined();
}

describe("blobs whose data or link is gone", () => {
  it("data gone: HEAD and GET answer 404 BLOB_UNKNOWN", async () => {
    const image = await pushed("missing/data");
    const layer = image.layers[0]!.digest;
    await rm(file(layout.blobDir(layer as Digest)), { recursive: true });
    for (const method of ["HEAD", "GET"]) {
      const reply = await call(method, `${plain.url}/v2/missing/data/blobs/${layer}`);
      expect(reply.status).toBe(404);
      if (method === "GET") expectSpec404(reply, errorCode(reply), "BLOB_UNKNOWN");
    }
    const ranged = await call("GET", `${plain.url}/v2/missing/data/blobs/${layer}`, { headers: { range: "bytes=0-9" } });
    expectSpec404(ranged, errorCode(ranged), "BLOB_UNKNOWN");
  });

  it("data gone behind a descriptor cache that vouched for it: GET answers 404 and the cache forgets it", async () => {
    const image = await pushed("missing/cached");
    const layer = image.layers[0]!.digest;
    await untilCacheVouches(cached.url, "missing/cached", [layer]);
    await rm(file(layout.blobDir(layer as Digest)), { recursive: true });
    const got = await call("GET", `${cached.url}/v2/missing/cached/blobs/${layer}`);
    expectSpec404(got, errorCode(got), "BLOB_UNKNOWN");
    expect((await call("HEAD", `${cached.url}/v2/missing/cached/blobs/${layer}`)).status).toBe(404);
  });

  it("link gone: 404 BLOB_UNKNOWN although the data is there", async () => {
    const image = await pushed("missing/link");
    const layer = image.layers[0]!.digest;
    await rm(file(layout.layerDir(repo("missing/link"), layer as Digest)), { recursive: true });
    const reply = await call("GET", `${plain.url}/v2/missing/link/blobs/${layer}`);
    expectSpec404(reply, errorCode(reply), "BLOB_UNKNOWN");
  });

  it("a manifest naming a blob whose link stayed but whose data went is refused with MANIFEST_BLOB_UNKNOWN", async () => {
    const image = await pushed("missing/push");
    await rm(file(layout.blobDir(image.layers[1]!.digest as Digest)), { recursive: true });
    const again = await call("PUT", `${plain.url}/v2/missing/push/manifests/v2`, {
      headers: { "content-type": image.manifest.mediaType },
      body: image.manifest.content,
    });
    expect(again.status).toBe(400);
    expect(errorCode(again)).toBe("MANIFEST_BLOB_UNKNOWN");
  });

  it("a mount from a repository whose blob data went starts an upload instead of linking nothing", async () => {
    const image = await pushed("missing/mount-src");
    const layer = image.layers[0]!.digest;
    await rm(file(layout.blobDir(layer as Digest)), { recursive: true });
    const reply = await call("POST", `${plain.url}/v2/missing/mount-dst/blobs/uploads/?mount=${layer}&from=missing/mount-src`);
    expect(reply.status).toBe(202);
  });
});

describe("manifests and tags whose files are gone", () => {
  it("manifest content gone, its revision link left: 404 MANIFEST_UNKNOWN by digest and by tag", async () => {
    const image = await pushed("missing/manifest");
    await rm(file(layout.blobDir(image.manifest.digest as Digest)), { recursive: true });
    // A fresh instance: nothing of it in memory.
    const fresh = await startTestRegistry({ root });
    try {
      for (const reference of [image.manifest.digest, "v1"]) {
        for (const method of ["GET", "HEAD"]) {
          const reply = await call(method, `${fresh.url}/v2/missing/manifest/manifests/${reference}`, { headers: { accept: image.manifest.mediaType } });
          expect(reply.status).toBe(404);
          if (method === "GET") expect(errorCode(reply)).toBe("MANIFEST_UNKNOWN");
        }
      }
      const deleted = await call("DELETE", `${fresh.url}/v2/missing/manifest/manifests/${image.manifest.digest}`);
      expect(deleted.status).toBe(404);
    } finally {
      await fresh.close();
    }
  });

  it("revision link gone: 404 MANIFEST_UNKNOWN by digest and through the tag", async () => {
    const image = await pushed("missing/revision");
    await rm(file(layout.revisionDir(repo("missing/revision"), image.manifest.digest as Digest)), { recursive: true });
    for (const reference of [image.manifest.digest, "v1"]) {
      const reply = await call("GET", `${plain.url}/v2/missing/revision/manifests/${reference}`);
      expect(errorCode(reply)).toBe("MANIFEST_UNKNOWN");
    }
  });

  it("a tag whose current link is gone, garbled or a directory: 404 MANIFEST_UNKNOWN; the tag list still answers", async () => {
    await pushed("missing/tags", "gone");
    await pushed("missing/tags", "garbled");
    await pushed("missing/tags", "dir");
    await rm(file(layout.tagCurrentLink(repo("missing/tags"), "gone" as Tag)));
    await writeFile(file(layout.tagCurrentLink(repo("missing/tags"), "garbled" as Tag)), "not a digest");
    const dirLink = file(layout.tagCurrentLink(repo("missing/tags"), "dir" as Tag));
    await rm(dirLink);
    await mkdir(dirLink);
    for (const tag of ["gone", "garbled", "dir"]) {
      const reply = await call("GET", `${plain.url}/v2/missing/tags/manifests/${tag}`);
      expect(reply.status).toBe(404);
      expect(errorCode(reply)).toBe("MANIFEST_UNKNOWN");
      expect((await call("DELETE", `${plain.url}/v2/missing/tags/manifests/${tag}`)).status).toBeLessThan(500);
    }
    expect((await call("GET", `${plain.url}/v2/missing/tags/tags/list`)).status).toBe(200);
  });

  it("the tags directory gone: tags/list answers 404 NAME_UNKNOWN", async () => {
    await pushed("missing/taglist");
    await rm(file(layout.tagsDir(repo("missing/taglist"))), { recursive: true });
    const reply = await call("GET", `${plain.url}/v2/missing/taglist/tags/list`);
    expect(reply.status).toBe(404);
    expect(errorCode(reply)).toBe("NAME_UNKNOWN");
  });

  it("a referrer whose manifest went is left out of the referrers list", async () => {
    const image = await pushed("missing/referrers");
    const sbom = artifactFor(image.manifest, "application/spdx+json");
    const kept = artifactFor(image.manifest, "application/vnd.example.signature");
    await pushImage(plain.url, "missing/referrers", sbom.manifest.digest, sbom);
    await pushImage(plain.url, "missing/referrers", kept.manifest.digest, kept);
    await rm(file(layout.blobDir(sbom.manifest.digest as Digest)), { recursive: true });
    const fresh = await startTestRegistry({ root });
    try {
      const reply = await call("GET", `${fresh.url}/v2/missing/referrers/referrers/${image.manifest.digest}`);
      expect(reply.status).toBe(200);
      expect(reply.json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest)).toEqual([kept.manifest.digest]);
    } finally {
      await fresh.close();
    }
  });

  it("an index naming a child whose content went (its revision link left) is refused with MANIFEST_BLOB_UNKNOWN", async () => {
    const child = await pushed("missing/index");
    await rm(file(layout.blobDir(child.manifest.digest as Digest)), { recursive: true });
    const index = indexOf([child]);
    const fresh = await startTestRegistry({ root });
    try {
      const reply = await call("PUT", `${fresh.url}/v2/missing/index/manifests/multi`, { headers: { "content-type": index.mediaType }, body: index.content });
      expect(reply.status).toBe(400);
      expect(errorCode(reply)).toBe("MANIFEST_BLOB_UNKNOWN");
    } finally {
      await fresh.close();
    }
  });
});

describe("upload sessions whose files are gone", () => {
  it("data gone mid-session: status, PATCH and PUT answer 404 BLOB_UPLOAD_UNKNOWN, and nothing comes back", async () => {
    const location = await startUpload(plain.url, "missing/upload");
    const id = new URL(location).pathname.split("/").pop()!;
    expect((await call("PATCH", location, { body: Buffer.from("first chunk") })).status).toBe(202);
    await rm(file(layout.uploadData(repo("missing/upload"), id)));
    expect(errorCode(await call("GET", location))).toBe("BLOB_UPLOAD_UNKNOWN");
    const patch = await call("PATCH", location, { body: Buffer.from("second") });
    expect(patch.status).toBe(404);
    expect(errorCode(patch)).toBe("BLOB_UPLOAD_UNKNOWN");
    const put = new URL(location);
    put.searchParams.set("digest", `sha256:${"0".repeat(64)}`);
    expect(errorCode(await call("PUT", put.toString()))).toBe("BLOB_UPLOAD_UNKNOWN");
  });

  it("startedat gone: the session goes on", async () => {
    const location = await startUpload(plain.url, "missing/started");
    const id = new URL(location).pathname.split("/").pop()!;
    await rm(file(layout.uploadStartedAt(repo("missing/started"), id)));
    const content = Buffer.from("a blob without its start time");
    expect((await call("PATCH", location, { body: content })).status).toBe(202);
    expect((await call("GET", location)).status).toBe(204);
  });

  it("a blob pushed again after its data went is stored again", async () => {
    const image = await pushed("missing/repush");
    const layer = image.layers[0]!;
    await rm(file(layout.blobDir(layer.digest as Digest)), { recursive: true });
    await pushBlob(plain.url, "missing/repush", layer);
    const reply = await call("GET", `${plain.url}/v2/missing/repush/blobs/${layer.digest}`);
    expect(reply.body.equals(layer.content)).toBe(true);
  });
});

describe("a mirror whose cached blob went from its store", () => {
  it("fetches it from the peer again, even where its descriptor cache vouched for it", async () => {
    const peer = await startTestRegistry();
    const mirrorRoot = await tempDir("lain-missing-mirror-");
    const mirror = await startTestRegistry({
      root: mirrorRoot,
      storageYaml: `  filesystem: {rootdirectory: ${mirrorRoot}}\n  cache: {blobdescriptor: inmemory}`,
      extraYaml: `${METRICS_ON_MAIN_PORT}\nproxy:\n  remoteurl: ${peer.url}`,
    });
    try {
      const image = randomImage({ layers: 1, layerSize: 5000 });
      await pushImage(peer.url, "lain/app", "v1", image);
      const layer = image.layers[0]!;
      const url = `${mirror.url}/v2/lain/app/blobs/${layer.digest}`;
      expect((await call("GET", url)).body.equals(layer.content)).toBe(true);
      // Once the fill has stored its copy, the copy goes.
      const copy = join(mirrorRoot, layout.blobData(layer.digest as Digest));
      await expect.poll(() => stat(copy).then(() => true, () => false), { timeout: 5000 }).toBe(true);
      await untilCacheVouches(mirror.url, "lain/app", [layer.digest]);
      await rm(join(mirrorRoot, layout.blobDir(layer.digest as Digest)), { recursive: true });
      const again = await call("GET", url);
      expect(again.status).toBe(200);
      expect(again.body.equals(layer.content)).toBe(true);
    } finally {
      await mirror.close();
      await peer.close();
      await rm(mirrorRoot, { recursive: true, force: true });
    }
  });
});
