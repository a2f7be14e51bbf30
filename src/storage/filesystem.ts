import { randomBytes } from "node:crypto";
import { constants as fsConstants, createWriteStream, close as closeFd, fstat, fsync, open as openFd } from "node:fs";
import { promisify } from "node:util";
import * as fsp from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable, type Writable } from "node:stream";
import {
  checkPath,
  PathNotFoundError,
  type FileInfo,
  type FileWriter,
  type StorageDriver,
} from "./driver.js";

const READ_CHUNK = 1024 * 1024;
const openFdAsync = promisify(openFd);
const fstatAsync = promisify(fstat);
const fsyncAsync = promisify(fsync);
const closeFdAsync = promisify(closeFd);

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/** Runs fn, turning "no such file" into the driver's PathNotFoundError. */
async function orNotFound<T>(path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isNotFound(err)) throw new PathNotFoundError(path);
    throw err;
  }
}

/** distribution's "filesystem" driver: the same files under the same rootdirectory. */
export class FilesystemDriver implements StorageDriver {
  readonly name = "filesystem";

  constructor(readonly rootDirectory: string) {}

  private resolve(path: string): string {
    checkPath(path);
    return join(this.rootDirectory, path);
  }

  async getContent(path: string): Promise<Buffer> {
    const file = this.resolve(path);
    return orNotFound(path, () => fsp.readFile(file));
  }

  async putContent(path: string, content: Buffer): Promise<void> {
    const file = this.resolve(path);
    await fsp.mkdir(dirname(file), { recursive: true });
    // Write beside the target and rename over it, so no reader ever sees a half-written link.
    const temp = `${file}.tmp-${randomBytes(6).toString("hex")}`;
    const handle = await fsp.open(temp, "w");
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fsp.rename(temp, file);
    } catch (err) {
      await fsp.rm(temp, { force: true });
      throw err;
    }
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    const file = this.resolve(path);
    // Opening first makes a missing file fail here, not later in the stream; an open fd also
    // keeps reading the same bytes if the path is replaced or deleted meanwhile.
    const handle = await orNotFound(path, () => fsp.open(file, fsConstants.O_RDONLY));
    if (end !== undefined && end <= offset) {
      await handle.close();
      return Readable.from([]);
    }
    return handle.createReadStream({
      start: offset,
      ...(end === undefined ? {} : { end: end - 1 }),
      highWaterMark: READ_CHUNK,
    });
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    const file = this.resolve(path);
    await fsp.mkdir(dirname(file), { recursive: true });
    // A numeric fd, not a FileHandle: a FileHandle's stream keeps it referenced (close() waits)
    // or closes it on destroy, and the writer needs to fsync after the stream has finished.
    const fd = await openFdAsync(file, append ? "a" : "w");
    const startSize = (await fstatAsync(fd)).size;
    const stream = createWriteStream("", { fd, autoClose: false, highWaterMark: READ_CHUNK });
    return new FilesystemFileWriter(file, fd, startSize, stream);
  }

  async stat(path: string): Promise<FileInfo> {
    const file = this.resolve(path);
    const st = await orNotFound(path, () => fsp.stat(file));
    return { path, size: st.size, modTime: st.mtime, isDir: st.isDirectory() };
  }

  async list(path: string): Promise<string[]> {
    const dir = this.resolve(path);
    const names = await orNotFound(path, () => fsp.readdir(dir));
    const prefix = path === "/" ? "" : path;
    return names.map((name) => `${prefix}/${name}`);
  }

  async move(source: string, destination: string): Promise<void> {
    const from = this.resolve(source);
    const to = this.resolve(destination);
    await fsp.mkdir(dirname(to), { recursive: true });
    await orNotFound(source, () => fsp.rename(from, to));
  }

  async delete(path: string): Promise<void> {
    const file = this.resolve(path);
    await orNotFound(path, () => fsp.lstat(file));
    await fsp.rm(file, { recursive: true, force: true });
  }
}

class FilesystemFileWriter implements FileWriter {
  private closed = false;

  constructor(
    private readonly file: string,
    private readonly fd: number,
    readonly startSize: number,
    readonly stream: Writable & { bytesWritten: number },
  ) {}

  size(): number {
    return this.startSize + this.stream.bytesWritten;
  }

  private async finish(sync: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.stream.writableFinished && !this.stream.destroyed) {
      await new Promise<void>((resolve, reject) => {
        this.stream.once("error", reject);
        this.stream.end(resolve);
      });
    }
    try {
      if (sync) await fsyncAsync(this.fd);
    } finally {
      await closeFdAsync(this.fd);
    }
  }

  close(): Promise<void> {
    return this.finish(false);
  }

  commit(): Promise<void> {
    return this.finish(true);
  }

  async cancel(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.stream.destroy();
      await closeFdAsync(this.fd).catch(() => undefined);
    }
    await fsp.rm(this.file, { force: true });
  }
}
