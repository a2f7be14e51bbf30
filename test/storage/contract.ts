import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InvalidPathError, PathNotFoundError, type StorageDriver } from "../../src/storage/driver.js";

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function write(driver: StorageDriver, path: string, data: Buffer, append: boolean, finish: "close" | "commit") {
  const writer = await driver.writer(path, append);
  await pipeline(Readable.from([data]), writer.stream);
  await writer[finish]();
  return writer;
}

export interface DriverFactory {
  create(): Promise<StorageDriver>;
  destroy?(driver: StorageDriver): Promise<void>;
}

/** The behaviour every StorageDriver promises; each driver's test file runs it. */
export function driverContract(name: string, factory: DriverFactory): void {
  describe(`StorageDriver contract: ${name}`, () => {
    let driver: StorageDriver;
    beforeEach(async () => {
      driver = await factory.create();
    });
    afterEach(async () => {
      await factory.destroy?.(driver);
    });

    it("puts and gets whole content, replacing it", async () => {
      await driver.putContent("/a/b/c", Buffer.from("one"));
      expect((await driver.getContent("/a/b/c")).toString()).toBe("one");
      await driver.putContent("/a/b/c", Buffer.from("two!"));
      expect((await driver.getContent("/a/b/c")).toString()).toBe("two!");
      expect((await driver.stat("/a/b/c")).size).toBe(4);
    });

    it("throws PathNotFoundError for missing paths on get, stat, reader, list, move and delete", async () => {
      await expect(driver.getContent("/missing")).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.stat("/missing")).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.reader("/missing")).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.list("/missing")).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.move("/missing", "/elsewhere")).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.delete("/missing")).rejects.toBeInstanceOf(PathNotFoundError);
    });

    it("refuses paths that could escape the root", async () => {
      for (const bad of ["relative", "/a/../../etc/passwd", "/a/./b", "/a//b", "/a\0b"]) {
        await expect(driver.getContent(bad)).rejects.toBeInstanceOf(InvalidPathError);
        await expect(driver.putContent(bad, Buffer.from("x"))).rejects.toBeInstanceOf(InvalidPathError);
      }
    });

    it("streams a reader from an offset up to an end", async () => {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      await driver.putContent("/blob", data);
      expect((await readAll(await driver.reader("/blob"))).equals(data)).toBe(true);
      expect((await readAll(await driver.reader("/blob", 1000))).equals(data.subarray(1000))).toBe(true);
      expect((await readAll(await driver.reader("/blob", 10, 20))).equals(data.subarray(10, 20))).toBe(true);
      expect((await readAll(await driver.reader("/blob", 5, 5))).length).toBe(0);
    });

    it("resumes a writer across instances: close, then append", async () => {
      const first = randomBytes(100_000);
      const second = randomBytes(50_000);
      const w1 = await write(driver, "/up/data", first, false, "close");
      expect(w1.startSize).toBe(0);
      expect(w1.size()).toBe(first.length);
      const w2 = await write(driver, "/up/data", second, true, "commit");
      expect(w2.startSize).toBe(first.length);
      expect(w2.size()).toBe(first.length + second.length);
      expect((await driver.getContent("/up/data")).equals(Buffer.concat([first, second]))).toBe(true);
    });

    it("reports the size a closed writer left, and resumes through many small closes", async () => {
      const pieces = [randomBytes(1024 * 1024), randomBytes(7 * 1024 * 1024), randomBytes(3000), randomBytes(2 * 1024 * 1024)];
      await write(driver, "/up/many", pieces[0]!, false, "close");
      expect((await driver.stat("/up/many")).size).toBe(pieces[0]!.length);
      let expected = pieces[0]!.length;
      for (const piece of pieces.slice(1, -1)) {
        const writer = await write(driver, "/up/many", piece, true, "close");
        expected += piece.length;
        expect(writer.size()).toBe(expected);
        expect((await driver.stat("/up/many")).size).toBe(expected);
      }
      await write(driver, "/up/many", pieces[3]!, true, "commit");
      expect((await driver.getContent("/up/many")).equals(Buffer.concat(pieces))).toBe(true);
    });

    it("commits an empty object", async () => {
      await write(driver, "/up/empty", Buffer.alloc(0), false, "commit");
      expect((await driver.stat("/up/empty")).size).toBe(0);
      expect((await driver.getContent("/up/empty")).length).toBe(0);
    });

    it("moves a large object intact", async () => {
      const data = randomBytes(12 * 1024 * 1024 + 5);
      await write(driver, "/big/source", data, false, "commit");
      await driver.move("/big/source", "/big/destination");
      expect((await driver.getContent("/big/destination")).equals(data)).toBe(true);
      await expect(driver.stat("/big/source")).rejects.toBeInstanceOf(PathNotFoundError);
    });

    it("delete also discards a writer's unfinished data", async () => {
      await write(driver, "/pending/data", randomBytes(1000), false, "close");
      await driver.delete("/pending");
      await expect(driver.stat("/pending/data")).rejects.toBeInstanceOf(PathNotFoundError);
      const fresh = await driver.writer("/pending/data", true);
      expect(fresh.startSize).toBe(0);
      await fresh.cancel();
    });

    it("starts over when append is false", async () => {
      await write(driver, "/up/data", Buffer.from("old content"), false, "commit");
      await write(driver, "/up/data", Buffer.from("new"), false, "commit");
      expect((await driver.getContent("/up/data")).toString()).toBe("new");
    });

    it("cancel removes what the writer wrote", async () => {
      const writer = await driver.writer("/up/cancelled", false);
      await new Promise<void>((resolve) => writer.stream.write(Buffer.from("partial"), () => resolve()));
      await writer.cancel();
      await expect(driver.stat("/up/cancelled")).rejects.toBeInstanceOf(PathNotFoundError);
    });

    it("lists direct children with full paths", async () => {
      await driver.putContent("/dir/one", Buffer.from("1"));
      await driver.putContent("/dir/two/deeper", Buffer.from("2"));
      expect((await driver.list("/dir")).sort()).toEqual(["/dir/one", "/dir/two"]);
      expect((await driver.stat("/dir/two")).isDir).toBe(true);
      expect((await driver.stat("/dir/one")).isDir).toBe(false);
    });

    it("moves an object, replacing the destination", async () => {
      await driver.putContent("/from", Buffer.from("payload"));
      await driver.putContent("/to/x", Buffer.from("old"));
      await driver.move("/from", "/to/x");
      expect((await driver.getContent("/to/x")).toString()).toBe("payload");
      await expect(driver.stat("/from")).rejects.toBeInstanceOf(PathNotFoundError);
      // A move must leave nothing behind that changes later writes (ali-oss once did).
      await driver.putContent("/after-move", Buffer.from("independent"));
      await write(driver, "/after-move-upload", Buffer.from("uploaded"), false, "commit");
      expect((await driver.getContent("/after-move")).toString()).toBe("independent");
      expect((await driver.getContent("/after-move-upload")).toString()).toBe("uploaded");
    });

    it("deletes a whole tree", async () => {
      await driver.putContent("/tree/a", Buffer.from("1"));
      await driver.putContent("/tree/b/c", Buffer.from("2"));
      await driver.putContent("/treeish", Buffer.from("sibling survives"));
      await driver.delete("/tree");
      await expect(driver.stat("/tree/a")).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(driver.stat("/tree/b/c")).rejects.toBeInstanceOf(PathNotFoundError);
      expect((await driver.getContent("/treeish")).toString()).toBe("sibling survives");
    });

    it("a reader opened before a delete still reads the old bytes or fails cleanly", async () => {
      const data = randomBytes(64 * 1024);
      await driver.putContent("/volatile", data);
      const reader = await driver.reader("/volatile");
      await driver.delete("/volatile");
      const got = await readAll(reader).catch(() => undefined);
      if (got) expect(got.equals(data)).toBe(true);
    });
  });
}
