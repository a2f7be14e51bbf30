import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/http.js";
import { artifactFor, indexOf, pushImage, randomImage, sha256, writeOciLayout, type Image } from "../helpers/oci.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { hasTool } from "../helpers/tools.js";

const available = hasTool("skopeo");

async function blobOf(layout: string, digest: string): Promise<Buffer> {
  return readFile(join(layout, "blobs", "sha256", digest.slice("sha256:".length)));
}

async function expectSameImage(layout: string, image: Image): Promise<void> {
  for (const item of [image.manifest, image.config, ...image.layers]) {
    expect((await blobOf(layout, item.digest)).equals(item.content)).toBe(true);
  }
}

describe.skipIf(!available)("skopeo against lain-registry", () => {
  let registry: TestRegistry;
  let work: string;

  beforeAll(async () => {
    registry = await startTestRegistry();
    work = await tempDir("lain-e2e-");
  });
  afterAll(async () => {
    await registry.close();
    await rm(work, { recursive: true, force: true });
  });

  it("pushes a single-platform image and pulls it back byte for byte, digest for digest", async () => {
    const image = randomImage({ layers: 3, layerSize: 200_000 });
    const source = join(work, "single-src");
    await writeOciLayout(source, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    await skopeo("copy", `oci:${source}:v1`, `docker://${registry.host}/e2e/single:v1`);

    const raw = await skopeo("inspect", "--raw", `docker://${registry.host}/e2e/single:v1`);
    expect(sha256(raw)).toBe(image.manifest.digest);
    const out = join(work, "single-out");
    await skopeo("copy", `docker://${registry.host}/e2e/single:v1`, `oci:${out}:v1`);
    await expectSameImage(out, image);
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
    expect(index.manifests[0]?.digest).toBe(image.manifest.digest);
  });

  it("pushes a multi-arch index with --all and pulls every platform back", async () => {
    const images = ["amd64", "arm64", "s390x"].map((architecture) => randomImage({ architecture, layers: 1 }));
    const index = indexOf(images);
    const source = join(work, "multi-src");
    await writeOciLayout(source, [{ tag: "v1", manifest: index }], [index, ...images.flatMap((i) => [i.manifest, i.config, ...i.layers])]);
    await skopeo("copy", "--all", `oci:${source}:v1`, `docker://${registry.host}/e2e/multi:v1`);

    expect(sha256(await skopeo("inspect", "--raw", `docker://${registry.host}/e2e/multi:v1`))).toBe(index.digest);
    const out = join(work, "multi-out");
    await skopeo("copy", "--all", `docker://${registry.host}/e2e/multi:v1`, `oci:${out}:v1`);
    for (const image of images) await expectSameImage(out, image);
    const arm = await skopeo("inspect", "--raw", "--override-arch", "arm64", `docker://${registry.host}/e2e/multi@${images[1]!.manifest.digest}`);
    expect(sha256(arm)).toBe(images[1]!.manifest.digest);
  });

  it("finds an artifact pushed for an image through the referrers API, and skopeo reads it", async () => {
    const image = randomImage({ layers: 1 });
    const source = join(work, "art-src");
    await writeOciLayout(source, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    await skopeo("copy", `oci:${source}:v1`, `docker://${registry.host}/e2e/signed:v1`);
    const signature = artifactFor(image.manifest, "application/vnd.example.signature.v1");
    await pushImage(registry.url, "e2e/signed", signature.manifest.digest, signature);

    const referrers = await call("GET", `${registry.url}/v2/e2e/signed/referrers/${image.manifest.digest}`);
    const found = referrers.json<{ manifests: Array<{ digest: string; artifactType: string }> }>().manifests;
    expect(found).toEqual([expect.objectContaining({ digest: signature.manifest.digest, artifactType: "application/vnd.example.signature.v1" })]);
    const raw = await skopeo("inspect", "--raw", `docker://${registry.host}/e2e/signed@${found[0]!.digest}`);
    expect(JSON.parse(raw).subject.digest).toBe(image.manifest.digest);
  });

  it("copies between repositories of the registry (cross-repository mount)", async () => {
    const image = randomImage({ layers: 2, layerSize: 50_000 });
    const source = join(work, "mount-src");
    await writeOciLayout(source, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    await skopeo("copy", `oci:${source}:v1`, `docker://${registry.host}/e2e/from:v1`);
    await skopeo("copy", `docker://${registry.host}/e2e/from:v1`, `docker://${registry.host}/e2e/to:v2`);
    const out = join(work, "mount-out");
    await skopeo("copy", `docker://${registry.host}/e2e/to:v2`, `oci:${out}:v2`);
    await expectSameImage(out, image);
    const tags = JSON.parse(await skopeo("list-tags", `docker://${registry.host}/e2e/to`)) as { Tags: string[] };
    expect(tags.Tags).toEqual(["v2"]);
  });

  it("deletes an image, which is then gone", async () => {
    const image = randomImage({ layers: 1 });
    const source = join(work, "del-src");
    await writeOciLayout(source, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    await skopeo("copy", `oci:${source}:v1`, `docker://${registry.host}/e2e/doomed:v1`);
    await skopeo("delete", `docker://${registry.host}/e2e/doomed:v1`);
    await expect(skopeo("inspect", "--raw", `docker://${registry.host}/e2e/doomed:v1`)).rejects.toThrow(/manifest unknown/i);
    expect((await call("GET", `${registry.url}/v2/e2e/doomed/manifests/${image.manifest.digest}`)).status).toBe(404);
  });
});
