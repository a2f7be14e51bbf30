import { resolve } from "node:path";
import type { StorageConfig } from "../config/config.js";
import { DEFAULT_ROOT_DIRECTORY } from "../config/schema.js";
import type { StorageDriver } from "./driver.js";
import { FilesystemDriver } from "./filesystem.js";
import { InMemoryDriver } from "./inmemory.js";


export function createDriver(storage: StorageConfig): StorageDriver {
  switch (storage.driver) {
    case "filesystem": {
      const root = storage.parameters.rootdirectory;
      return new FilesystemDriver(resolve(typeof root === "string" && root !== "" ? root : DEFAULT_ROOT_DIRECTORY));
    }
    case "inmemory":
      return new InMemoryDriver();
    default:
      throw new Error(`the ${storage.driver} storage driver is not available in this version; use filesystem`);
  }
}
