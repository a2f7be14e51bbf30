import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/http.js";
import { pushBlob, randomImage, sha256, writeOciLayout } from "../helpers/oci.js";
import { OssTestServer } from "../helpers/oss-server.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { hasTool } from "../helpers/tools.js";

const CREDENTIALS = { accessKeyId: "LAINOSSTESTKEYID0002", accessKeySecret: "lainOssTestSecret000000000000002" };

describe.skipIf(!hasTool("skopeo"))("lain-registry on OSS (the LAIN README's storage.oss keys)", () => {
  let oss: OssTestServer;
  let work: string;
  let redirecting: TestRegistry;
  let direct: TestRegistry;

  beforeAll(async () => {
    work = await tempDir("lain-oss-e2e-");
    oss = await OssTestServer.start({ bucket: "lain-images", ...CREDENTIALS });
    const section = [
      "  oss:",
      `    accesskeyid: ${CREDENTIALS.accessKeyId}`,
      `    accesskeysecret: ${CREDENTIALS.accessKeySecret}`,
      "    region: oss-cn-beijing",
      `    endpoint: ${oss.endpoint.replace("127.0.0.1", "localhost")}`,
      "    cname: true",
      "    internal: optional internal endpoint",
      "    bucket: lain-images",
      "    encrypt: false",
      "    secure: false",
      "    chunksize: 5242880",
      "    rootdirectory: /registry",
    ].join("\n");
    redirecting = await startTestRegistry({ storageYaml: section });
    direct = await startTestRegistry({ storageYaml: `${section}\n  redirect:\n    disable: true` });
  });
  afterAll(async () => {
    await redirecting?.close();
    await direct?.close();
    await oss?.close();
    await rm(work, { recursive: true, force: true });
  });

  for (const mode of ["redirect", "direct"] as const) {
    it(`skopeo pushes and pulls back byte for byte (${mode})`, async () => {
      const registry = mode === "redirect" ? redirecting : direct;
      const image = randomImage({ layers: 2, layerSize: 6 * 1024 * 1024 });
      const source = join(work, `${mode}-src`);
      await writeOciLayout(source, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
      await skopeo("copy", `oci:${source}:v1`, `docker://${registry.host}/oss/${mode}:v1`);
      const get = await call("GET", `${registry.url}/v2/oss/${mode}/blobs/${image.layers[0]!.digest}`);
      expect(get.status).toBe(mode === "redirect" ? 307 : 200);
      const out = join(work, `${mode}-out`);
      await skopeo("copy", `docker://${registry.host}/oss/${mode}:v1`, `oci:${out}:v1`);
      for (const item of [image.manifest, image.config, ...image.layers]) {
        expect(sha256(await readFile(join(out, "blobs", "sha256", item.digest.slice(7))))).toBe(item.digest);
      }
      expect(oss.keys()).toContain(`registry/docker/registry/v2/blobs/sha256/${image.layers[0]!.digest.slice(7, 9)}/${image.layers[0]!.digest.slice(7)}/data`);
      expect(oss.pendingUploads()).toBe(0);
    });
  }

  it("lists a repository in the catalog once a blob is pushed into it, before any manifest", async () => {
    await pushBlob(direct.url, "oss/blob-only", randomImage().layers[0]!);
    const repos = (await call("GET", `${direct.url}/v2/_catalog`)).json<{ repositories: string[] }>().repositories;
    expect(repos).toContain("oss/blob-only");
  });
});
