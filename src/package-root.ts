import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The installed package's own directory (package.json, config/, ui/ beside dist/): the first
 * one up from this module that holds a package.json. Found, not assumed at a fixed depth: the
 * server runs from a bundle (dist/cli/ and its chunks/), the tests from the modules one by one.
 */
function find(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
  }
}

export const PACKAGE_ROOT = find();
