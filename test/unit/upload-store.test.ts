import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { BlobStore, RepositoryBlobs } from "../../src/registry/blobs.js";
import { digestOf, type Digest } from "../../src/registry/digest.js";
import type { RepositoryName } from "../../src/registry/names.js";
import { UploadStore } from "../../src/registry/uploads.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { FilesystemDriver } from "../../src/storage/filesystem.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { layout } from "../../src/registry/layout.js";
import { bodyOf } from "../helpers/store.js";
import { until } from "../helpers/until.js";

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

/** `data` in pieces of `size` bytes (a socket's reads). */
function pieces(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += size) out.push(data.subarray(offset, offset + size));
  return out;
}

describe("UploadStore: a session removed while a request writes to it", () => {
  it("is refused with BLOB_UPLOAD_UNKNOWN, and no empty session comes back in its place", async () => {
    const inner = new InMemoryDriver();
    const driver = Object.create(inner) as StorageDriver;
    const name = "race/upload" as RepositoryName;
    const blobs = new BlobStore(driver);
    const uploads = new UploadStore(driver, blobs.barrier);
    const { id } = await uploads.create(name);
    await uploads.append(name, id, bodyOf(Readable.from([Buffer.from("first chunk")])));
    // Upload purging (or a DELETE on another instance) removes it between the status read and the write.
    driver.writer = async (path, append) => {
      await inner.delete(layout.uploadDir(name, id));
      return inner.writer(path, append);
    };
    await expect(uploads.append(name, id, bodyOf(Readable.from([Buffer.from("second")])))).rejects.toMatchObject({ code: "BLOB_UPLOAD_UNKNOWN" });
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
      const uploads = new UploadStore(driver, blobs.barrier);
      const content = Buffer.from("the same layer, pushed to two repositories");
      const digest = digestOf(content);
      const first = new RepositoryBlobs(driver, blobs, "again/one" as RepositoryName);
      await uploads.complete(first, (await uploads.create(first.name)).id, digest, bodyOf(Readable.from([content])));
      const stored = await stat(join(root, layout.blobData(digest)));
      const second = new RepositoryBlobs(driver, blobs, "again/two" as RepositoryName);
      const { id } = await uploads.create(second.name);
      expect(await uploads.complete(second, id, digest, bodyOf(Readable.from([content])))).toEqual({ digest, size: content.length });
      expect((await stat(join(root, layout.blobData(digest)))).ino).toBe(stored.ino);
      expect(await second.stat(digest)).toMatchObject({ digest, size: content.length });
      await until(async () => (await uploads.status(second.name, id)) === undefined, "the session's removal", 5_000);
      blobs.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("UploadStore: the running hash of an upload", () => {
  /** An in-memory store that counts reads of upload data (a digest taken from the stored bytes). */
  function counting(): { driver: StorageDriver; readsBack: () => number } {
    const inner = new InMemoryDriver();
    const driver = Object.create(inner) as StorageDriver;
    let reads = 0;
    driver.reader = (path, offset, end) => {
      if (path.includes("/_uploads/")) reads++;
      return inner.reader(path, offset, end);
    };
    return { driver, readsBack: () => reads };
  }

  it("completes a chunked upload with the running digest, without reading its data back", async () => {
    const { driver, readsBack } = counting();
    const blobs = new BlobStore(driver);
    const uploads = new UploadStore(driver, blobs.barrier);
    const repo = new RepositoryBlobs(driver, blobs, "hash/chunked" as RepositoryName);
    const data = randomBytes(4 * MiB + 99);
    const { id } = await uploads.create(repo.name);
    await uploads.append(repo.name, id, bodyOf(Readable.from(pieces(data.subarray(0, 3 * MiB), 65_536))));
    const blob = await uploads.complete(repo, id, sha256(data) as Digest, bodyOf(Readable.from([data.subarray(3 * MiB)])));
    expect(blob).toEqual({ digest: sha256(data), size: data.length });
    expect(readsBack()).toBe(0);
    expect((await driver.getContent(layout.blobData(sha256(data) as Digest))).equals(data)).toBe(true);
    blobs.close();
  });

  it("hashes the stored bytes when a PATCH broke off, and still verifies the digest", async () => {
    const { driver, readsBack } = counting();
    const blobs = new BlobStore(driver);
    const uploads = new UploadStore(driver, blobs.barrier);
    const repo = new RepositoryBlobs(driver, blobs, "hash/resumed" as RepositoryName);
    const data = randomBytes(2 * MiB + 5);
    const { id } = await uploads.create(repo.name);
    const cut = new Readable({ read() {} });
    const appending = uploads.append(repo.name, id, bodyOf(cut));
    cut.push(data.subarray(0, MiB));
    setImmediate(() => cut.destroy(new Error("connection reset")));
    await expect(appending).rejects.toThrow("connection reset");
    const kept = (await uploads.status(repo.name, id))!.size;
    const blob = await uploads.complete(repo, id, sha256(data) as Digest, bodyOf(Readable.from([data.subarray(kept)])));
    expect(blob.digest).toBe(sha256(data));
    expect(readsBack()).toBe(1);
    await expect(
      uploads.complete(repo, (await uploads.create(repo.name)).id, sha256(data) as Digest, bodyOf(Readable.from([Buffer.from("other bytes")]))),
    ).rejects.toMatchObject({ code: "DIGEST_INVALID" });
    blobs.close();
  });
});
