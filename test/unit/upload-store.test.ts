import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { BlobStore } from "../../src/registry/blobs.js";
import type { RepositoryName } from "../../src/registry/names.js";
import { UploadStore } from "../../src/registry/uploads.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { layout } from "../../src/storage/layout.js";

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
