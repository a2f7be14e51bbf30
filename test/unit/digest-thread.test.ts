import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { BlobStore, RepositoryBlobs } from "../../src/registry/blobs.js";
import { ThreadedHash } from "../../src/registry/digest-thread.js";
import type { Digest } from "../../src/registry/digest.js";
import type { RepositoryName } from "../../src/registry/names.js";
import { UploadStore } from "../../src/registry/uploads.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { layout } from "../../src/storage/layout.js";

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

/** `data` in pieces of the given sizes, cycling (a socket's reads are of any size). */
function pieces(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0, i = 0; offset < data.length; i++) {
    const size = sizes[i % sizes.length]!;
    out.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return out;
}

/** Feeds `chunks` through the hash's feed and checks they come out unchanged. */
async function feed(hash: ThreadedHash, chunks: Buffer[]): Promise<void> {
  const passed: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    hash.feed(),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        passed.push(Buffer.from(chunk));
        callback();
      },
    }),
  );
  expect(Buffer.concat(passed).equals(Buffer.concat(chunks))).toBe(true);
}

describe("ThreadedHash: digests on the digest thread", () => {
  it("equals node:crypto's digest for sizes around the slots' boundaries, in pieces of any size", async () => {
    for (const size of [0, 1, MiB / 2 - 1, MiB / 2, MiB / 2 + 1, MiB, 5.5 * MiB, 9 * MiB + 7]) {
      const data = randomBytes(size);
      const hash = new ThreadedHash("sha256");
      await feed(hash, pieces(data, [65_536, 1, 333_333, 2 * MiB + 3, 7]));
      expect(await hash.digest()).toBe(sha256(data));
    }
  });

  it("continues over feeds that follow one another (a chunked upload's PATCHes), and sha512", async () => {
    const data = randomBytes(3 * MiB + 12_345);
    const hash = new ThreadedHash("sha512");
    for (const part of pieces(data, [MiB + 100, 17, 2 * MiB])) await feed(hash, [part]);
    expect(await hash.digest()).toBe(`sha512:${createHash("sha512").update(data).digest("hex")}`);
  });

  it("keeps concurrent hashes apart while their feeds wait for slots", async () => {
    const bodies = Array.from({ length: 6 }, (_, i) => randomBytes(6 * MiB + i));
    const hashes = bodies.map(() => new ThreadedHash("sha256"));
    await Promise.all(bodies.map((body, i) => feed(hashes[i]!, pieces(body, [65_536 + i]))));
    const digests = await Promise.all(hashes.map((hash) => hash.digest()));
    expect(digests).toEqual(bodies.map(sha256));
  });

  it("a feed destroyed midway leaves the next hashes right", async () => {
    const broken = new ThreadedHash("sha256");
    const source = new Readable({ read() {} });
    const done = pipeline(source, broken.feed(), new Writable({ write: (_c, _e, cb) => cb() }));
    source.push(randomBytes(3 * MiB));
    source.destroy(new Error("client went away"));
    await expect(done).rejects.toThrow("client went away");
    broken.dispose();
    const data = randomBytes(5 * MiB);
    const hash = new ThreadedHash("sha256");
    await feed(hash, pieces(data, [65_536]));
    expect(await hash.digest()).toBe(sha256(data));
  });
});

describe("the digest thread and the process's exit", () => {
  it("lets a process end while hashes are open but nothing waits on the thread (idle upload sessions)", async () => {
    const module = new URL("../../dist/registry/digest-thread.js", import.meta.url).href;
    const opened = `const { ThreadedHash } = await import(${JSON.stringify(module)}); new ThreadedHash("sha256"); console.log("opened");`;
    const hashed = `
      const { ThreadedHash } = await import(${JSON.stringify(module)});
      const { Readable, Writable } = await import("node:stream");
      const { pipeline } = await import("node:stream/promises");
      const hash = new ThreadedHash("sha256");
      await pipeline(Readable.from([Buffer.alloc(${MiB + 3}, 7)]), hash.feed(), new Writable({ write: (_c, _e, cb) => cb() }));
      console.log(await hash.digest());
      new ThreadedHash("sha256");`;
    // A thread that held the process would be killed here, and the test would fail on the signal.
    const run = async (script: string) =>
      (await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], { timeout: 30_000 })).stdout.trim();
    expect(await run(opened)).toBe("opened");
    expect(await run(hashed)).toBe(sha256(Buffer.alloc(MiB + 3, 7)));
  });
});

describe("UploadStore with the digest thread", () => {
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
    const uploads = new UploadStore(driver, blobs.guard);
    const repo = new RepositoryBlobs(driver, blobs, "thread/chunked" as RepositoryName);
    const data = randomBytes(4 * MiB + 99);
    const { id } = await uploads.create(repo.name);
    await uploads.append(repo.name, id, Readable.from(pieces(data.subarray(0, 3 * MiB), [65_536])));
    const blob = await uploads.complete(repo, id, sha256(data) as Digest, Readable.from([data.subarray(3 * MiB)]));
    expect(blob).toEqual({ digest: sha256(data), size: data.length });
    expect(readsBack()).toBe(0);
    expect((await driver.getContent(layout.blobData(sha256(data) as Digest))).equals(data)).toBe(true);
    blobs.close();
  });

  it("hashes the stored bytes when a PATCH broke off, and still verifies the digest", async () => {
    const { driver, readsBack } = counting();
    const blobs = new BlobStore(driver);
    const uploads = new UploadStore(driver, blobs.guard);
    const repo = new RepositoryBlobs(driver, blobs, "thread/resumed" as RepositoryName);
    const data = randomBytes(2 * MiB + 5);
    const { id } = await uploads.create(repo.name);
    const cut = new Readable({ read() {} });
    const appending = uploads.append(repo.name, id, cut);
    cut.push(data.subarray(0, MiB));
    setImmediate(() => cut.destroy(new Error("connection reset")));
    await expect(appending).rejects.toThrow("connection reset");
    const kept = (await uploads.status(repo.name, id))!.size;
    const blob = await uploads.complete(repo, id, sha256(data) as Digest, Readable.from([data.subarray(kept)]));
    expect(blob.digest).toBe(sha256(data));
    expect(readsBack()).toBe(1);
    await expect(
      uploads.complete(repo, (await uploads.create(repo.name)).id, sha256(data) as Digest, Readable.from([Buffer.from("other bytes")])),
    ).rejects.toMatchObject({ code: "DIGEST_INVALID" });
    blobs.close();
  });
});
