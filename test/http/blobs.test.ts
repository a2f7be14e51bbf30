import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode } from "../helpers/http.js";
import { pushBlob, sha256, type Blob } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

let registry: TestRegistry;
let base: string;
const data = randomBytes(100_000);
const blob: Blob = { mediaType: "application/octet-stream", digest: sha256(data), content: data };

beforeAll(async () => {
  registry = await startTestRegistry();
  base = registry.url;
  await pushBlob(base, "blobs/one", blob);
});
afterAll(() => registry.close());

describe("GET and HEAD /v2/<name>/blobs/<digest>", () => {
  it("GET returns the bytes with digest, length and cache headers", async () => {
    const reply = await call("GET", `${base}/v2/blobs/one/blobs/${blob.digest}`);
    expect(reply.status).toBe(200);
    expect(reply.body.equals(data)).toBe(true);
    expect(reply.headers["docker-content-digest"]).toBe(blob.digest);
    expect(reply.headers["content-length"]).toBe(String(data.length));
    expect(reply.headers["accept-ranges"]).toBe("bytes");
    expect(reply.headers.etag).toBe(`"${blob.digest}"`);
  });

  it("HEAD has the headers and no body", async () => {
    const reply = await call("HEAD", `${base}/v2/blobs/one/blobs/${blob.digest}`);
    expect(reply.status).toBe(200);
    expect(reply.body.length).toBe(0);
    expect(reply.headers["content-length"]).toBe(String(data.length));
  });

  it("serves a byte range with 206 and Content-Range", async () => {
    const reply = await call("GET", `${base}/v2/blobs/one/blobs/${blob.digest}`, { headers: { range: "bytes=1000-1999" } });
    expect(reply.status).toBe(206);
    expect(reply.headers["content-range"]).toBe(`bytes 1000-1999/${data.length}`);
    expect(reply.body.equals(data.subarray(1000, 2000))).toBe(true);
    const suffix = await call("GET", `${base}/v2/blobs/one/blobs/${blob.digest}`, { headers: { range: "bytes=-10" } });
    expect(suffix.body.equals(data.subarray(data.length - 10))).toBe(true);
  });

  it("answers 416 with the size for a range beyond the end", async () => {
    const reply = await call("GET", `${base}/v2/blobs/one/blobs/${blob.digest}`, { headers: { range: `bytes=${data.length}-` } });
    expect(reply.status).toBe(416);
    expect(reply.headers["content-range"]).toBe(`bytes */${data.length}`);
  });

  it("answers 304 when If-None-Match names the digest", async () => {
    const reply = await call("GET", `${base}/v2/blobs/one/blobs/${blob.digest}`, { headers: { "if-none-match": `"${blob.digest}"` } });
    expect(reply.status).toBe(304);
  });

  it("a blob is only visible in repositories it was pushed or mounted to", async () => {
    const reply = await call("GET", `${base}/v2/blobs/other/blobs/${blob.digest}`);
    expect(reply.status).toBe(404);
    expect(errorCode(reply)).toBe("BLOB_UNKNOWN");
  });

  it("answers DIGEST_INVALID for malformed digests and NAME_INVALID for bad names", async () => {
    expect(errorCode(await call("GET", `${base}/v2/blobs/one/blobs/sha256:xyz`))).toBe("DIGEST_INVALID");
    expect(errorCode(await call("GET", `${base}/v2/blobs/one/blobs/md5:abc`))).toBe("DIGEST_INVALID");
    expect(errorCode(await call("GET", `${base}/v2/Blobs/One/blobs/${blob.digest}`))).toBe("NAME_INVALID");
  });
});

describe("DELETE /v2/<name>/blobs/<digest>", () => {
  it("unlinks the blob from the repository: 202, then 404 there, still served elsewhere", async () => {
    await pushBlob(base, "blobs/two", blob);
    expect((await call("DELETE", `${base}/v2/blobs/two/blobs/${blob.digest}`)).status).toBe(202);
    expect((await call("HEAD", `${base}/v2/blobs/two/blobs/${blob.digest}`)).status).toBe(404);
    expect((await call("HEAD", `${base}/v2/blobs/one/blobs/${blob.digest}`)).status).toBe(200);
    expect(errorCode(await call("DELETE", `${base}/v2/blobs/two/blobs/${blob.digest}`))).toBe("BLOB_UNKNOWN");
  });

  it("is UNSUPPORTED (405) when storage.delete.enabled is false", async () => {
    const readOnlyDelete = await startTestRegistry({ deleteEnabled: false });
    try {
      await pushBlob(readOnlyDelete.url, "x/y", blob);
      const reply = await call("DELETE", `${readOnlyDelete.url}/v2/x/y/blobs/${blob.digest}`);
      expect(reply.status).toBe(405);
      expect(errorCode(reply)).toBe("UNSUPPORTED");
      expect((await call("HEAD", `${readOnlyDelete.url}/v2/x/y/blobs/${blob.digest}`)).status).toBe(200);
    } finally {
      await readOnlyDelete.close();
    }
  });
});
