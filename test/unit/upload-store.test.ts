import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { BlobStore, RepositoryBlobs } from "../../src/registry/blobs.js";
import { digestOf } from "../../src/registry/digest.js";
import type { RepositoryName } from "../../src/registry/names.js";
import { UploadStore } from "../../src/registry/uploads.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { FilesystemDriver } from "../../src/storage/filesystem.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { layout } from "../../src/storage/layout.js";
import { until } from "../helpers/until.js";

describe("UploadStore: a session removed while a request writes to it", () => {
  it("is refused with BLOB_UPLOAD_UNKNOWN, and no empty session comes back in its place", async () => {
    const inner = new InMemoryDriver();
    const driver = Object.create(inner) as StorageDriver;
    const name = "race/upload" as RepositoryName;
    const blobs = new BlobStore(driver);
    const uploads = new UploadStore(driver, blobs.guard);
    const { id } = await uploads.create(name);
    await uploads.append(name, id, Readable.from([Buffer.from("first chunk")]));
    // Upload purging (or a DELETE on another instance) removes it between the status read and the write.
    driver.writer = async (path, append) => {
      await inner.delete(layout.uploadDir(name, id));
      return inner.writer(path, append);
    };
    await expect(uploads.append(name, id, Readable.from([Buffer.from("second")]))).rejects.toMatchObject({ code: "BLOB_UPLOAD_UNKNOWN" });
    expect(await uploads.status(name, id)).toBeUndefined();
    blobs.close();
  });
});

describe("UploadStore: an upload of a blob the store holds already", () => {
  it("links it without replacing the stored data (as distribution does), and the session goes", async () => {
    const root = await mkdtemp(join(tmpdir(), "lain-upload-again-"));
    try {
      const driver = new FilesystemDriver(root);
      const blobs = new BlobStore(driver);
      const uploads = new UploadStore(driver, blobs.guard);
      const content = Buffer.from("the same layer, pushed to two repositories");
      const digest = digestOf(content);
      const first = new RepositoryBlobs(driver, blobs, "again/one" as RepositoryName);
      await uploads.complete(first, (await uploads.create(first.name)).id, digest, Readable.from([content]));
      const stored = await stat(join(root, layout.blobData(digest)));
      const second = new RepositoryBlobs(driver, blobs, "again/two" as RepositoryName);
      const { id } = await uploads.create(second.name);
      expect(await uploads.complete(second, id, digest, Readable.from([content]))).toEqual({ digest, size: content.length });
      expect((await stat(join(root, layout.blobData(digest)))).ino).toBe(stored.ino);
      expect(await second.stat(digest)).toMatchObject({ digest, size: content.length });
      await until(async () => (await uploads.status(second.name, id)) === undefined, "the session's removal", 5_000);
      blobs.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
