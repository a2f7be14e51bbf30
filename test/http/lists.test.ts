import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode } from "../helpers/http.js";
import { artifactFor, pushBlob, pushImage, pushManifest, randomImage } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

let registry: TestRegistry;
let base: string;
const TAGS = ["1.0", "1.1", "2.0", "latest", "v9"];
const REPOS = ["alpha", "alpha/beta", "alpha-gamma", "zeta/one", "zeta/two"];

beforeAll(async () => {
  registry = await startTestRegistry();
  base = registry.url;
  const image = randomImage();
  await pushImage(base, "lists/tags", TAGS[0]!, image);
  for (const tag of TAGS.slice(1)) await pushManifest(base, "lists/tags", tag, image.manifest);
  for (const name of REPOS) await pushImage(base, `cat/${name}`, "v1", randomImage({ layers: 1, layerSize: 64 }));
});
afterAll(() => registry.close());

describe("GET /v2/<name>/tags/list", () => {
  it("lists every tag in lexical order", async () => {
    const reply = await call("GET", `${base}/v2/lists/tags/tags/list`);
    expect(reply.json()).toEqual({ name: "lists/tags", tags: TAGS });
  });

  it("pages with n and last, with a Link header to the next page", async () => {
    const first = await call("GET", `${base}/v2/lists/tags/tags/list?n=2`);
    expect(first.json()).toEqual({ name: "lists/tags", tags: ["1.0", "1.1"] });
    expect(first.headers.link).toBe('</v2/lists/tags/tags/list?last=1.1&n=2>; rel="next"');
    const second = await call("GET", `${base}/v2/lists/tags/tags/list?n=2&last=1.1`);
    expect(second.json()).toEqual({ name: "lists/tags", tags: ["2.0", "latest"] });
    const last = await call("GET", `${base}/v2/lists/tags/tags/list?n=2&last=latest`);
    expect(last.json()).toEqual({ name: "lists/tags", tags: ["v9"] });
    expect(last.headers.link).toBeUndefined();
  });

  it("answers an empty list for n=0 and PAGINATION_NUMBER_INVALID for a bad n", async () => {
    expect((await call("GET", `${base}/v2/lists/tags/tags/list?n=0`)).json()).toEqual({ name: "lists/tags", tags: [] });
    expect(errorCode(await call("GET", `${base}/v2/lists/tags/tags/list?n=-1`))).toBe("PAGINATION_NUMBER_INVALID");
    expect(errorCode(await call("GET", `${base}/v2/lists/tags/tags/list?n=ten`))).toBe("PAGINATION_NUMBER_INVALID");
  });

  it("answers NAME_UNKNOWN for a repository that does not exist", async () => {
    const reply = await call("GET", `${base}/v2/no/such/tags/list`);
    expect(reply.status).toBe(404);
    expect(errorCode(reply)).toBe("NAME_UNKNOWN");
  });
});

describe("GET /v2/_catalog", () => {
  it("lists repositories in distribution's path-aware order", async () => {
    const reply = await call("GET", `${base}/v2/_catalog`);
    const repos = reply.json<{ repositories: string[] }>().repositories.filter((r) => r.startsWith("cat/"));
    expect(repos).toEqual(["cat/alpha", "cat/alpha/beta", "cat/alpha-gamma", "cat/zeta/one", "cat/zeta/two"]);
  });

  it("lists a repository as soon as a blob is pushed or mounted into it, before any manifest, as distribution does", async () => {
    const blob = randomImage().layers[0]!;
    await pushBlob(base, "only/pushed", blob);
    const mounted = await call("POST", `${base}/v2/only/mounted/blobs/uploads/?mount=${blob.digest}&from=only/pushed`);
    expect(mounted.status).toBe(201);
    const repos = (await call("GET", `${base}/v2/_catalog`)).json<{ repositories: string[] }>().repositories;
    expect(repos).toEqual(expect.arrayContaining(["only/mounted", "only/pushed"]));
  });

  it("pages with n and last and a Link header, visiting each repository once", async () => {
    const seen: string[] = [];
    let url: string | undefined = `${base}/v2/_catalog?n=2`;
    for (let page = 0; url && page < 20; page++) {
      const reply = await call("GET", url);
      const repos = reply.json<{ repositories: string[] }>().repositories;
      expect(repos.length).toBeLessThanOrEqual(2);
      seen.push(...repos);
      const link = reply.headers.link;
      url = link ? `${base}${/<([^>]+)>/.exec(link)?.[1]}` : undefined;
    }
    const all = (await call("GET", `${base}/v2/_catalog`)).json<{ repositories: string[] }>().repositories;
    expect(seen).toEqual(all);
    expect(new Set(seen).size).toBe(seen.length);
  });
});

describe("GET /v2/<name>/referrers/<digest>", () => {
  it("lists the artifacts whose subject is the digest, filtering by artifactType", async () => {
    const name = "lists/referred";
    const image = randomImage();
    await pushImage(base, name, "v1", image);
    const sig = artifactFor(image.manifest, "application/vnd.example.signature");
    const sbom = artifactFor(image.manifest, "application/vnd.example.sbom");
    for (const artifact of [sig, sbom]) {
      await pushImage(base, name, artifact.manifest.digest, artifact);
    }
    const reply = await call("GET", `${base}/v2/${name}/referrers/${image.manifest.digest}`);
    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toBe("application/vnd.oci.image.index.v1+json");
    const index = reply.json<{ manifests: Array<{ digest: string; artifactType: string; annotations: Record<string, string> }> }>();
    expect(index.manifests.map((m) => m.digest).sort()).toEqual([sig.manifest.digest, sbom.manifest.digest].sort());
    expect(index.manifests.find((m) => m.digest === sig.manifest.digest)?.annotations).toEqual({ "org.example.kind": "application/vnd.example.signature" });

    const filtered = await call("GET", `${base}/v2/${name}/referrers/${image.manifest.digest}?artifactType=application/vnd.example.sbom`);
    expect(filtered.headers["oci-filters-applied"]).toBe("artifactType");
    expect(filtered.json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest)).toEqual([sbom.manifest.digest]);
  });

  it("answers OCI-Subject on push, and drops a deleted referrer from the list", async () => {
    const name = "lists/referred2";
    const image = randomImage();
    await pushImage(base, name, "v1", image);
    const sig = artifactFor(image.manifest, "application/vnd.example.signature");
    for (const b of [sig.config, ...sig.layers]) await call("POST", `${base}/v2/${name}/blobs/uploads/?digest=${b.digest}`, { body: b.content });
    const put = await call("PUT", `${base}/v2/${name}/manifests/${sig.manifest.digest}`, {
      headers: { "content-type": sig.manifest.mediaType },
      body: sig.manifest.content,
    });
    expect(put.headers["oci-subject"]).toBe(image.manifest.digest);
    await call("DELETE", `${base}/v2/${name}/manifests/${sig.manifest.digest}`);
    const reply = await call("GET", `${base}/v2/${name}/referrers/${image.manifest.digest}`);
    expect(reply.json<{ manifests: unknown[] }>().manifests).toEqual([]);
  });

  it("answers an empty index for an unknown subject and DIGEST_INVALID for a bad digest", async () => {
    const empty = await call("GET", `${base}/v2/lists/tags/referrers/sha256:${"0".repeat(64)}`);
    expect(empty.status).toBe(200);
    expect(empty.json()).toEqual({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] });
    expect(errorCode(await call("GET", `${base}/v2/lists/tags/referrers/latest`))).toBe("DIGEST_INVALID");
  });
});
