import { Writable } from "node:stream";
import type { FileWriter, StorageDriver } from "../../src/storage/driver.js";

/** An error as node:fs gives one for a failed system call. */
export function errno(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected fault, ${syscall}`), { code, syscall, errno: -1 });
}

/** Where the next fault is injected, by the errno code it fails with; each fires once. */
export interface Faults {
  /** A writer's stream fails once it has taken this many bytes. */
  write?: { after: number; code: string };
  /** A writer's commit (its fsync) fails. */
  commit?: string;
  /** A move (the rename of a verified upload into place) fails. */
  move?: string;
  /** A putContent whose path matches fails. */
  putContent?: { path: RegExp; code: string };
}

/**
 * A driver over another that fails where a test says, as a disk would: EIO on the n-th byte of a
 * write, on the fsync of a commit, on a rename, ENOSPC on a small write. Every other call goes
 * to the driver beneath.
 */
export function faultyDriver(inner: StorageDriver, faults: Faults): StorageDriver {
  const take = <K extends keyof Faults>(key: K): Faults[K] => {
    const fault = faults[key];
    delete faults[key];
    return fault;
  };
  const writer = async (path: string, append: boolean): Promise<FileWriter> => {
    const real = await inner.writer(path, append);
    let taken = 0;
    // The fault goes to the first writer that takes data (an upload's session starts with an empty one).
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        taken += chunk.length;
        const write = faults.write;
        if (write && taken > write.after) {
          delete faults.write;
          return callback(errno(write.code, "write"));
        }
        real.stream.write(chunk, callback);
      },
      final: (callback) => real.stream.end(callback),
    });
    return {
      startSize: real.startSize,
      stream,
      size: () => real.size(),
      close: () => real.close(),
      commit: async () => {
        const code = take("commit");
        if (!code) return real.commit();
        await real.close();
        throw errno(code, "fsync");
      },
      cancel: () => real.cancel(),
      ...(real.readBack ? { readBack: () => real.readBack!() } : {}),
    };
  };
  return {
    name: inner.name,
    getContent: (path) => inner.getContent(path),
    putContent: async (path, content, transient) => {
      const fault = faults.putContent;
      if (fault && fault.path.test(path)) {
        delete faults.putContent;
        throw errno(fault.code, "write");
      }
      return inner.putContent(path, content, transient);
    },
    reader: (path, offset, end) => inner.reader(path, offset, end),
    writer,
    stat: (path) => inner.stat(path),
    list: (path) => inner.list(path),
    walk: (path) => inner.walk(path),
    move: async (source, destination) => {
      const code = take("move");
      if (code) throw errno(code, "rename");
      return inner.move(source, destination);
    },
    delete: (path) => inner.delete(path),
    deleteObjects: (paths) => inner.deleteObjects(paths),
    ...(inner.removeEmptyDir ? { removeEmptyDir: (path: string) => inner.removeEmptyDir!(path) } : {}),
  };
}
