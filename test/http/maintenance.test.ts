import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode } from "../helpers/http.js";
import { pushImage, randomImage, type Image } from "../helpers/oci.js";
import { startTestRegistry, tempDir } from "../helpers/registry.js";

describe("storage.maintenance", () => {
  let root: string;
  let image: Image;

  beforeAll(async () => {
    root = await tempDir();
    const writable = await startTestRegistry({ root });
    image = randomImage({ layers: 1 });
    await pushImage(writable.url, "lain/app", "v1", image);
    await writable.close();
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("readonly: pulls work, every write answers 405 UNSUPPORTED saying why", async () => {
    const registry = await startTestRegistry({ root, storageYaml: `  filesystem: {rootdirectory: ${root}}\n  maintenance:\n    readonly: {enabled: true}` });
    try {
      const manifest = await call("GET", `${registry.url}/v2/lain/app/manifests/v1`, { headers: { accept: image.manifest.mediaType } });
      expect(manifest.status).toBe(200);
      const writes = [
        call("POST", `${registry.url}/v2/lain/app/blobs/uploads/`),
        call("PUT", `${registry.url}/v2/lain/app/manifests/v2`, { headers: { "content-type": image.manifest.mediaType }, body: image.manifest.content }),
        call("DELETE", `${registry.url}/v2/lain/app/manifests/${image.manifest.digest}`),
        call("DELETE", `${registry.url}/v2/lain/app/blobs/${image.layers[0]!.digest}`),
      ];
      for (const reply of await Promise.all(writes)) {
        expect(reply.status).toBe(405);
        expect(errorCode(reply)).toBe("UNSUPPORTED");
        expect(reply.text).toContain("read-only mode");
      }
    } finally {
      await registry.close();
    }
  });

  it("uploadpurging: abandoned sessions older than age go when the registry starts; young ones stay", async () => {
    const uploads = join(root, "docker/registry/v2/repositories/lain/app/_uploads");
    const old = "11111111-2222-4333-8444-555555555555";
    const young = "11111111-2222-4333-8444-666666666666";
    for (const [id, started] of [[old, "2026-01-01T00:00:00Z"], [young, new Date().toISOString()]] as const) {
      await mkdir(join(uploads, id), { recursive: true });
      await writeFile(join(uploads, id, "startedat"), started);
      await writeFile(join(uploads, id, "data"), "partial");
    }
    const registry = await startTestRegistry({
      root,
      storageYaml: `  filesystem: {rootdirectory: ${root}}\n  maintenance:\n    uploadpurging: {enabled: true, age: 1h, interval: 24h}`,
    });
    try {
      await expect.poll(() => readdir(uploads), { timeout: 5000 }).toEqual([young]);
    } finally {
      await registry.close();
    }
  });
});
