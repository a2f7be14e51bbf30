import { readdir, rm } from "node:fs/promises";
import { afterAll, describe, expect, it } from "vitest";
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
});
