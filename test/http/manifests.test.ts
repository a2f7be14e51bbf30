import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode } from "../helpers/http.js";
import {
  DOCKER_LIST,
  DOCKER_MANIFEST,
  OCI_INDEX,
  OCI_MANIFEST,
  indexOf,
  manifestOf,
  pushBlob,
  pushImage,
  pushManifest,
  randomImage,
  sha256,
} from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

let registry: TestRegistry;
let base: string;
let counter = 0;
const repo = () => `manifests/r${++counter}`;

beforeAll(async () => {
  registry = await startTestRegistry();
  base = registry.url;
});
afterAll(() => registry.close());

describe("PUT /v2/<name>/manifests/<reference>", () => {
  it("stores an OCI manifest by tag: 201 with Location and Docker-Content-Digest", async () => {
    const name = repo();
    const image = randomImage();
    for (const b of [image.config, ...image.layers]) await pushBlob(base, name, b);
    const reply = await call("PUT", `${base}/v2/${name}/manifests/v1`, {
      headers: { "content-type": OCI_MANIFEST },
      body: image.manifest.content,
    });
    expect(reply.status).toBe(201);
    expect(reply.headers["docker-content-digest"]).toBe(image.manifest.digest);
    expect(reply.headers.location).toMatch(new RegExp(`/v2/${name}/manifests/${image.manifest.digest}$`));
  });

  it("GET by tag and by digest returns the exact bytes with their media type", async () => {
    const name = repo();
    const image = randomImage({ format: "docker" });
    await pushImage(base, name, "latest", image);
    for (const ref of ["latest", image.manifest.digest]) {
      const reply = await call("GET", `${base}/v2/${name}/manifests/${ref}`, { headers: { accept: DOCKER_MANIFEST } });
      expect(reply.status).toBe(200);
      expect(reply.body.equals(image.manifest.content)).toBe(true);
      expect(reply.headers["content-type"]).toBe(DOCKER_MANIFEST);
      expect(reply.headers["docker-content-digest"]).toBe(image.manifest.digest);
    }
    const head = await call("HEAD", `${base}/v2/${name}/manifests/latest`);
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(image.manifest.content.length));
    expect(head.body.length).toBe(0);
  });

  it("refuses a manifest whose layers are not in the repository: MANIFEST_BLOB_UNKNOWN", async () => {
    const name = repo();
    const image = randomImage();
    await pushBlob(base, name, image.config);
    const reply = await call("PUT", `${base}/v2/${name}/manifests/v1`, {
      headers: { "content-type": OCI_MANIFEST },
      body: image.manifest.content,
    });
    expect(reply.status).toBe(400);
    expect(errorCode(reply)).toBe("MANIFEST_BLOB_UNKNOWN");
    expect((await call("GET", `${base}/v2/${name}/manifests/v1`)).status).toBe(404);
  });

  it("refuses a manifest that lies about a layer's size", async () => {
    const name = repo();
    const image = randomImage();
    for (const b of [image.config, ...image.layers]) await pushBlob(base, name, b);
    const json = structuredClone(image.manifest.json) as { layers: Array<{ size: number }> };
    json.layers[0]!.size += 1;
    const reply = await call("PUT", `${base}/v2/${name}/manifests/v1`, {
      headers: { "content-type": OCI_MANIFEST },
      body: JSON.stringify(json),
    });
    expect(errorCode(reply)).toBe("MANIFEST_INVALID");
  });

  it("refuses a body whose digest does not match the digest reference", async () => {
    const name = repo();
    const image = randomImage();
    for (const b of [image.config, ...image.layers]) await pushBlob(base, name, b);
    const reply = await call("PUT", `${base}/v2/${name}/manifests/${sha256("else")}`, {
      headers: { "content-type": OCI_MANIFEST },
      body: image.manifest.content,
    });
    expect(reply.status).toBe(400);
    expect(errorCode(reply)).toBe("DIGEST_INVALID");
  });

  it.each([
    ["not JSON", "{oops", OCI_MANIFEST],
    ["a JSON array", "[]", OCI_MANIFEST],
    ["schemaVersion 1", JSON.stringify({ schemaVersion: 1, name: "x", tag: "y", fsLayers: [] }), "application/vnd.docker.distribution.manifest.v1+prettyjws"],
    ["mediaType disagreeing with Content-Type", JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }), OCI_MANIFEST],
    ["a Docker manifest without its mediaType field", JSON.stringify({ schemaVersion: 2, config: {}, layers: [] }), DOCKER_MANIFEST],
    ["a config without digest", JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: "x", size: 1 }, layers: [] }), OCI_MANIFEST],
    ["an unknown media type", JSON.stringify({ schemaVersion: 2 }), "application/x-whatever"],
  ])("refuses %s with MANIFEST_INVALID", async (_, body, contentType) => {
    const name = repo();
    const reply = await call("PUT", `${base}/v2/${name}/manifests/v1`, { headers: { "content-type": contentType }, body });
    expect(reply.status).toBe(400);
    expect(errorCode(reply)).toBe("MANIFEST_INVALID");
    expect((await call("GET", `${base}/v2/${name}/tags/list`)).status).toBe(404);
  });

  it("refuses manifests over 4 MiB with 413", async () => {
    const reply = await call("PUT", `${base}/v2/${repo()}/manifests/big`, {
      headers: { "content-type": OCI_MANIFEST },
      body: Buffer.alloc(4 * 1024 * 1024 + 1, 32),
    });
    expect(reply.status).toBe(413);
  });

  it("refuses an invalid tag with TAG_INVALID", async () => {
    const reply = await call("PUT", `${base}/v2/${repo()}/manifests/.bad`, { headers: { "content-type": OCI_MANIFEST }, body: "{}" });
    expect(reply.status).toBe(400);
    expect(errorCode(reply)).toBe("TAG_INVALID");
    const digestLike = await call("PUT", `${base}/v2/${repo()}/manifests/sha256:zzz`, { headers: { "content-type": OCI_MANIFEST }, body: "{}" });
    expect(errorCode(digestLike)).toBe("DIGEST_INVALID");
  });

  // OCI distribution-spec conformance v1.1.1, pull and push workflows: "nonexistent manifest".
  it.each([".INVALID_MANIFEST_NAME", "-leading-dash", "sha256:zzz", "md5:0123456789abcdef0123456789abcdef", "a".repeat(129)])(
    "answers GET, HEAD and DELETE of %s, which can name no manifest, with 404 MANIFEST_UNKNOWN",
    async (reference) => {
      const name = repo();
      await pushImage(base, name, "v1", randomImage());
      for (const method of ["GET", "HEAD", "DELETE"]) {
        const reply = await call(method, `${base}/v2/${name}/manifests/${reference}`);
        expect(reply.status, method).toBe(404);
        if (method !== "HEAD") expect(errorCode(reply)).toBe("MANIFEST_UNKNOWN");
      }
    },
  );

  it("stores an index only when its child manifests are in the repository", async () => {
    const name = repo();
    const amd = randomImage({ architecture: "amd64" });
    const arm = randomImage({ architecture: "arm64" });
    const index = indexOf([amd, arm]);
    await pushImage(base, name, amd.manifest.digest, amd);
    const early = await call("PUT", `${base}/v2/${name}/manifests/multi`, { headers: { "content-type": OCI_INDEX }, body: index.content });
    expect(errorCode(early)).toBe("MANIFEST_BLOB_UNKNOWN");
    await pushImage(base, name, arm.manifest.digest, arm);
    await pushManifest(base, name, "multi", index);
    const got = await call("GET", `${base}/v2/${name}/manifests/multi`, { headers: { accept: OCI_INDEX } });
    expect(got.headers["content-type"]).toBe(OCI_INDEX);
    expect(got.body.equals(index.content)).toBe(true);
  });
});

describe("content negotiation", () => {
  it("gives a client that does not accept indexes the linux/amd64 image of a tag, as distribution does", async () => {
    const name = repo();
    const amd = randomImage({ architecture: "amd64", format: "docker" });
    const arm = randomImage({ architecture: "arm64", format: "docker" });
    await pushImage(base, name, amd.manifest.digest, amd);
    await pushImage(base, name, arm.manifest.digest, arm);
    const list = indexOf([amd, arm], "docker");
    await pushManifest(base, name, "multi", list);
    const reply = await call("GET", `${base}/v2/${name}/manifests/multi`, { headers: { accept: DOCKER_MANIFEST } });
    expect(reply.headers["docker-content-digest"]).toBe(amd.manifest.digest);
    const full = await call("GET", `${base}/v2/${name}/manifests/multi`, { headers: { accept: `${DOCKER_MANIFEST}, ${DOCKER_LIST}` } });
    expect(full.headers["docker-content-digest"]).toBe(list.digest);
  });

  it("answers MANIFEST_UNKNOWN when the Accept header excludes the stored type", async () => {
    const name = repo();
    const image = randomImage();
    await pushImage(base, name, "v1", image);
    const reply = await call("GET", `${base}/v2/${name}/manifests/v1`, { headers: { accept: DOCKER_MANIFEST } });
    expect(reply.status).toBe(404);
    expect(errorCode(reply)).toBe("MANIFEST_UNKNOWN");
    const any = await call("GET", `${base}/v2/${name}/manifests/v1`, { headers: { accept: "*/*" } });
    expect(any.status).toBe(200);
  });
});

describe("DELETE /v2/<name>/manifests/<reference>", () => {
  it("by digest removes the manifest and the tags pointing at it", async () => {
    const name = repo();
    const image = randomImage();
    await pushImage(base, name, "a", image);
    await pushManifest(base, name, "b", image.manifest);
    const other = randomImage();
    await pushImage(base, name, "c", other);
    expect((await call("DELETE", `${base}/v2/${name}/manifests/${image.manifest.digest}`)).status).toBe(202);
    expect((await call("GET", `${base}/v2/${name}/manifests/${image.manifest.digest}`)).status).toBe(404);
    expect((await call("GET", `${base}/v2/${name}/manifests/a`)).status).toBe(404);
    expect((await call("GET", `${base}/v2/${name}/tags/list`)).json()).toEqual({ name, tags: ["c"] });
    expect(errorCode(await call("DELETE", `${base}/v2/${name}/manifests/${image.manifest.digest}`))).toBe("MANIFEST_UNKNOWN");
  });

  it("by tag removes only the tag", async () => {
    const name = repo();
    const image = randomImage();
    await pushImage(base, name, "a", image);
    expect((await call("DELETE", `${base}/v2/${name}/manifests/a`)).status).toBe(202);
    expect((await call("GET", `${base}/v2/${name}/manifests/a`)).status).toBe(404);
    expect((await call("GET", `${base}/v2/${name}/manifests/${image.manifest.digest}`)).status).toBe(200);
  });
});

describe("unknown manifests", () => {
  it("answers MANIFEST_UNKNOWN (404) for a missing tag or digest", async () => {
    const a = await call("GET", `${base}/v2/${repo()}/manifests/nope`);
    expect(a.status).toBe(404);
    expect(errorCode(a)).toBe("MANIFEST_UNKNOWN");
    const b = await call("HEAD", `${base}/v2/${repo()}/manifests/${sha256("nope")}`);
    expect(b.status).toBe(404);
  });

  it("does not serve a manifest of another repository", async () => {
    const image = randomImage();
    const name = repo();
    await pushImage(base, name, "v1", image);
    expect((await call("GET", `${base}/v2/${repo()}/manifests/${image.manifest.digest}`)).status).toBe(404);
  });

  it("pushes with an artifact manifest whose mediaType field is absent (OCI allows it)", async () => {
    const name = repo();
    const image = randomImage();
    for (const b of [image.config, ...image.layers]) await pushBlob(base, name, b);
    const { mediaType: _, ...json } = image.manifest.json;
    const bare = manifestOf(json);
    const reply = await call("PUT", `${base}/v2/${name}/manifests/bare`, { headers: { "content-type": OCI_MANIFEST }, body: bare.content });
    expect(reply.status).toBe(201);
    const got = await call("GET", `${base}/v2/${name}/manifests/bare`);
    expect(got.headers["content-type"]).toBe(OCI_MANIFEST);
  });
});
