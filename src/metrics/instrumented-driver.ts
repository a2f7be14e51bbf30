import type { Readable } from "node:stream";
import { isPathNotFound, type FileInfo, type FileWriter, type StorageDriver } from "../storage/driver.js";
import type { Metrics } from "./metrics.js";

/** A driver that times and counts every call of the one it wraps (registry_storage_*). */
export function instrumentDriver(driver: StorageDriver, metrics: Metrics): StorageDriver {
  const labels = (action: string) => ({ driver: driver.name, action });
  const timed = async <T>(action: string, call: () => Promise<T>): Promise<T> => {
    const end = metrics.storageDuration.startTimer(labels(action));
    try {
      return await call();
    } catch (err) {
      if (!isPathNotFound(err)) metrics.storageErrors.inc(labels(action));
      throw err;
    } finally {
      end();
    }
  };
  const instrumented: StorageDriver = {
    name: driver.name,
    getContent: (path) => timed("GetContent", () => driver.getContent(path)),
    putContent: (path, content, transient) => timed("PutContent", () => driver.putContent(path, content, transient)),
    reader: (path, offset, end): Promise<Readable> => timed("Reader", () => driver.reader(path, offset, end)),
    writer: (path, append): Promise<FileWriter> => timed("Writer", () => driver.writer(path, append)),
    stat: (path): Promise<FileInfo> => timed("Stat", () => driver.stat(path)),
    list: (path) => timed("List", () => driver.list(path)),
    walk: (path) => timed("Walk", () => driver.walk(path)),
    move: (source, destination) => timed("Move", () => driver.move(source, destination)),
    delete: (path) => timed("Delete", () => driver.delete(path)),
    deleteObjects: (paths) => timed("DeleteObjects", () => driver.deleteObjects(paths)),
  };
  const { redirectURL, verify, removeEmptyDir, space } = driver;
  if (space) instrumented.space = () => space.call(driver);
  if (redirectURL) instrumented.redirectURL = (path) => timed("RedirectURL", () => redirectURL.call(driver, path));
  if (verify) instrumented.verify = () => verify.call(driver);
  if (removeEmptyDir) instrumented.removeEmptyDir = (path) => timed("RemoveEmptyDir", () => removeEmptyDir.call(driver, path));
  return instrumented;
}
