import { execFileSync } from "node:child_process";
import { mkdir, open, readdir, rm, stat, unlink } from "node:fs/promises";
import { afterAll, describe, expect, it } from "vitest";
import { isPathNotFound } from "../../src/storage/driver.js";
import { FilesystemDriver } from "../../src/storage/filesystem.js";
import { tempDir } from "../helpers/registry.js";
import { driverContract } from "./contract.js";

const roots: string[] = [];
driverContract("filesystem", {
  async create() {
    const root = await tempDir();
    roots.push(root);
    return new FilesystemDriver(root);
  },
});

afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

describe("FilesystemDriver", () => {
  it("writes content under the root directory and leaves no temporary files", async () => {
    const root = await tempDir();
    roots.push(root);
    const driver = new FilesystemDriver(root);
    await driver.putContent("/docker/registry/v2/x/link", Buffer.from("sha256:abc"));
    expect(await readdir(`${root}/docker/registry/v2/x`)).toEqual(["link"]);
  });

  it("answers what a link holds now after every kind of change, though it keeps small content it read", async () => {
    const root = await tempDir();
    roots.push(root);
    const driver = new FilesystemDriver(root);
    const path = "/docker/registry/v2/repositories/app/_manifests/tags/v1/current/link";
    const file = `${root}${path}`;
    const read = async () => (await driver.getContent(path)).toString();
    await driver.putContent(path, Buffer.from("sha256:aaaa"));
    expect(await read()).toBe("sha256:aaaa");
    // Replaced as this driver does it (a new file renamed over it).
    await driver.putContent(path, Buffer.from("sha256:bbbb"));
    expect(await read()).toBe("sha256:bbbb");
    // Rewritten in place as distribution's driver does, same size, the times set back to the old
    // ones to the nanosecond (touch -r): only the change time tells.
    const before = await stat(file, { bigint: true });
    execFileSync("touch", ["-r", file, `${file}.times`]);
    const handle = await open(file, "r+");
    await handle.write(Buffer.from("sha256:cccc"), 0, 11, 0);
    await handle.close();
    execFileSync("touch", ["-r", `${file}.times`, file]);
    const after = await stat(file, { bigint: true });
    expect([after.ino, after.mtimeNs]).toEqual([before.ino, before.mtimeNs]);
    expect(await read()).toBe("sha256:cccc");
    // Removed, then a directory in its place.
    await unlink(file);
    await expect(driver.getContent(path)).rejects.toSatisfy(isPathNotFound);
    await mkdir(file);
    await expect(driver.getContent(path)).rejects.toSatisfy(isPathNotFound);
  });

  it("reads content larger than a read chunk whole, again and again", async () => {
    const root = await tempDir();
    roots.push(root);
    const driver = new FilesystemDriver(root);
    const big = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
    await driver.putContent("/big", big);
    expect((await driver.getContent("/big")).equals(big)).toBe(true);
    expect((await driver.getContent("/big")).equals(big)).toBe(true);
  });
});
