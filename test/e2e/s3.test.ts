import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startDistribution } from "../helpers/distribution.js";
import { call } from "../helpers/http.js";
import { indexOf, pushBlob, randomImage, sha256, writeOciLayout, type Image } from "../helpers/oci.js";
import type { ServerProcess } from "../helpers/process.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { createBucket, s3StorageYaml } from "../helpers/s3.js";
import { skopeo } from "../helpers/skopeo.js";
import { hasTool } from "../helpers/tools.js";

const server = inject("s3");
const available = server !== null && hasTool("skopeo") && hasTool("docker-registry");

describe.skipIf(!available)("lain-registry on S3 (Ceph RGW)", () => {
  let work: string;
  let bucket: string;
  let redirecting: TestRegistry;
  let direct: TestRegistry;
  let distribution: ServerProcess;

  beforeAll(async () => {
    work = await tempDir("lain-s3-e2e-");
    bucket = await createBucket(server!);
    const storageYaml = s3StorageYaml(server!, bucket);
    redirecting = await startTestRegistry({ storageYaml });
    direct = await startTestRegistry({ storageYaml: `${storageYaml}\n  redirect:\n    disable: true` });
    distribution = await startDistribution({ storageYaml, secret: "test-secret", configDir: work });
  });
  afterAll(async () => {
    await distribution?.stop();
    await redirecting?.close();
    await direct?.close();
    await rm(work, { recursive: true, force: true });
  });

  async function pushLayout(name: string, entries: Array<{ tag: string; image: Image }>, host: string, reference: string, all = false): Promise<void> {
    const dir = join(work, name);
    const index = entries.length > 1 ? indexOf(entries.map((e) => e.image)) : undefined;
    const blobs = entries.flatMap(({ image }) => [image.manifest, image.config, ...image.layers]);
    await writeOciLayout(dir, [{ tag: "v1", manifest: index ?? entries[0]!.image.manifest }], index ? [index, ...blobs] : blobs);
    await skopeo("copy", ...(all ? ["--all"] : []), `oci:${dir}:v1`, `docker://${host}/${reference}`);
  }

  async function expectPulls(host: string, reference: string, images: Image[], name: string, all = false): Promise<void> {
    const out = join(work, `${name}-out`);
    await skopeo("copy", ...(all ? ["--all"] : []), `docker://${host}/${reference}`, `oci:${out}:v1`);
    for (const image of images) {
      for (const item of [image.manifest, image.config, ...image.layers]) {
        expect((await readFile(join(out, "blobs", "sha256", item.digest.slice(7)))).equals(item.content)).toBe(true);
      }
    }
  }

  it("answers blob GETs with a 307 to a presigned store URL, HEADs itself", async () => {
    const image = randomImage({ layers: 1, layerSize: 64 * 1024 });
    await pushLayout("redirect", [{ tag: "v1", image }], redirecting.host, "s3/redirect:v1");
    const layer = image.layers[0]!;
    const head = await call("HEAD", `${redirecting.url}/v2/s3/redirect/blobs/${layer.digest}`);
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(layer.content.length));
    const get = await call("GET", `${redirecting.url}/v2/s3/redirect/blobs/${layer.digest}`);
    expect(get.status).toBe(307);
    expect(get.headers.location).toContain(new URL(server!.endpoint).host);
    expect(get.headers.location).toContain("X-Amz-Signature=");
    const fromStore = await call("GET", get.headers.location!);
    expect(sha256(fromStore.body)).toBe(layer.digest);
  });

  it("skopeo pushes and pulls a multi-arch image through the redirect, byte for byte", async () => {
    const images = ["amd64", "arm64"].map((architecture) => randomImage({ architecture, layers: 2, layerSize: 3 * 1024 * 1024 }));
    await pushLayout("multi", images.map((image) => ({ tag: "v1", image })), redirecting.host, "s3/multi:v1", true);
    await expectPulls(redirecting.host, "s3/multi:v1", images, "multi", true);
  });

  it("with storage.redirect.disable the bytes come through the registry", async () => {
    const image = randomImage({ layers: 2, layerSize: 6 * 1024 * 1024 });
    await pushLayout("direct", [{ tag: "v1", image }], direct.host, "s3/direct:v1");
    const get = await call("GET", `${direct.url}/v2/s3/direct/blobs/${image.layers[0]!.digest}`);
    expect(get.status).toBe(200);
    expect(sha256(get.body)).toBe(image.layers[0]!.digest);
    await expectPulls(direct.host, "s3/direct:v1", [image], "direct");
  });

  it("serves what distribution pushed into the bucket", async () => {
    const image = randomImage({ layers: 2, layerSize: 2 * 1024 * 1024 });
    await pushLayout("d2l", [{ tag: "v1", image }], distribution.host, "s3/by-distribution:v1");
    expect(sha256(await skopeo("inspect", "--raw", `docker://${redirecting.host}/s3/by-distribution:v1`))).toBe(image.manifest.digest);
    await expectPulls(redirecting.host, "s3/by-distribution:v1", [image], "d2l");
  });

  it("a push with a wrong digest leaves no object and no unfinished multipart upload", async () => {
    const { S3Client, ListMultipartUploadsCommand, ListObjectsV2Command } = await import("@aws-sdk/client-s3");
    const client = new S3Client({
      region: server!.region,
      endpoint: server!.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: server!.accessKey, secretAccessKey: server!.secretKey },
    });
    const start = await call("POST", `${direct.url}/v2/s3/debris/blobs/uploads/`);
    const location = new URL(start.headers.location!, direct.url);
    const data = Buffer.alloc(12 * 1024 * 1024, 3);
    expect((await call("PATCH", location.toString(), { body: data })).status).toBe(202);
    const reply = await call("PUT", `${location.toString()}&digest=${sha256("not this")}`);
    expect(reply.status).toBe(400);
    const prefix = "registry/docker/registry/v2/repositories/s3/debris/_uploads/";
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    expect(uploads.Uploads ?? []).toEqual([]);
    const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    expect((objects.Contents ?? []).map((o) => o.Key)).toEqual([]);
    client.destroy();
  });

  it("distribution serves what lain-registry pushed into the bucket", async () => {
    const image = randomImage({ layers: 2, layerSize: 7 * 1024 * 1024 });
    await pushLayout("l2d", [{ tag: "v1", image }], direct.host, "s3/by-lain:v1");
    expect(sha256(await skopeo("inspect", "--raw", `docker://${distribution.host}/s3/by-lain:v1`))).toBe(image.manifest.digest);
    await expectPulls(distribution.host, "s3/by-lain:v1", [image], "l2d");
    const tags = (await call("GET", `${distribution.url}/v2/s3/by-lain/tags/list`)).json();
    expect(tags).toEqual((await call("GET", `${direct.url}/v2/s3/by-lain/tags/list`)).json());
  });

  it("the catalog lists a repository holding only a pushed blob, as distribution's does on the same bucket", async () => {
    await pushBlob(direct.url, "s3/blob-only", randomImage().layers[0]!);
    const catalog = async (url: string) => (await call("GET", `${url}/v2/_catalog`)).json<{ repositories: string[] }>().repositories;
    expect(await catalog(distribution.url)).toContain("s3/blob-only");
    expect(await catalog(direct.url)).toContain("s3/blob-only");
  });
});
