import { randomBytes } from "node:crypto";
import { constants as fsConstants, close as closeFd, fdatasync, fstat, fsync, open as openFd, read, writev, type BigIntStats } from "node:fs";
import { promisify } from "node:util";
import { LRUCache } from "lru-cache";
import * as fsp from "node:fs/promises";
import { dirname, join } from "node:path";
import { ConfigError } from "../refusal.js";
import { RecyclingReader } from "./chunk-pool.js";
import { Readable, Writable } from "node:stream";
import {
  checkPath,
  PathNotFoundError,
  storeFault,
  type FileInfo,
  type FileWriter,
  type ReadBack,
  type StorageDriver,
  type StoreSpace,
} from "./driver.js";

const READ_CHUNK = 1024 * 1024;
/** Released chunks a reader keeps for reuse: enough to cover one socket write in flight. */
const SPARE_CHUNKS = 3;
const openFdAsync = promisify(openFd);
const fstatAsync = promisify(fstat);
const fsyncAsync = promisify(fsync);
const fdatasyncAsync = promisify(fdatasync);
const closeFdAsync = promisify(closeFd);

/** "No such file", and for reads of content, a directory where a file should be (no object there). */
function isNotFound(err: unknown, directoryToo: boolean): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR" || (directoryToo && code === "EISDIR");
}

/** Runs fn, turning "no such file" into the driver's PathNotFoundError. */
async function orNotFound<T>(path: string, fn: () => Promise<T>, directoryToo = false): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isNotFound(err, directoryToo)) throw new PathNotFoundError(path);
    throw err;
  }
}

/**
 * Small objects (links, tags) read lately are answered again after a stat alone when the file
 * is the same one, unchanged: one call to the thread pool instead of four (open, fstat, read,
 * close), which is most of a manifest GET's or a blob HEAD's cost. A file is the same while its
 * inode, size and times (to the nanosecond) are: this driver replaces content by renaming a new
 * file over it; a writer in place (distribution's driver) changes its times.
 */
const RECENT_ENTRY_BYTES = 16 * 1024;
const RECENT_BYTES = 4 * 1024 * 1024;
/** What an entry costs beside its content and its key (the entry, its identity string, the LRU's slots). */
const RECENT_ENTRY_OVERHEAD = 256;

interface RecentContent {
  identity: string;
  /**
   * The bytes as a latin1 string, in V8's heap, which its collector compacts. A slice of a shared
   * Buffer slab kept the whole 64 KiB slab; thousands of small Buffers of their own, churned
   * through by a soak's pushes, scattered malloc's heap between the sockets' 64 KiB reads, and it
   * crept up by 30 MiB in 600 s.
   */
  content: string;
}

function identity(info: BigIntStats): string {
  return `${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
}

/**
 * Whether the volume is full, as its writes tell: from a write that failed for lack of space
 * until one succeeds again (what /health says between two looks at the free space).
 */
class SpaceLedger {
  fullSince: Date | undefined;

  /** Passes the error on, noting it when it says the volume is full. */
  failed(err: unknown): unknown {
    if (storeFault(err)?.kind === "full") this.fullSince ??= new Date();
    return err;
  }

  written(): void {
    this.fullSince = undefined;
  }
}

/** distribution's "filesystem" driver: the same files under the same rootdirectory. */
export class FilesystemDriver implements StorageDriver {
  readonly name = "filesystem";
  private readonly recent = new LRUCache<string, RecentContent>({ maxSize: RECENT_BYTES, sizeCalculation: (entry, file) => entry.content.length + 2 * file.length + RECENT_ENTRY_OVERHEAD });
  private readonly ledger = new SpaceLedger();

  constructor(readonly rootDirectory: string) {}

  async space(): Promise<StoreSpace> {
    const { bavail, blocks, bsize } = await fsp.statfs(this.rootDirectory);
    return { free: bavail * bsize, total: blocks * bsize, fullSince: this.ledger.fullSince };
  }

  private resolve(path: string): string {
    checkPath(path);
    return join(this.rootDirectory, path);
  }

  /** The root must be a writable directory; creating it is serve's business (cli/prepare.ts), never a check's. */
  async verify(): Promise<void> {
    try {
      if (!(await fsp.stat(this.rootDirectory)).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
      await fsp.access(this.rootDirectory, fsConstants.W_OK);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `is not a writable directory (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
      throw new ConfigError("storage.filesystem.rootdirectory", `${this.rootDirectory} ${why}`);
    }
  }

  async getContent(path: string): Promise<Buffer> {
    const file = this.resolve(path);
    const known = this.recent.get(file);
    if (known) {
      const now = await orNotFound(path, () => fsp.stat(file, { bigint: true }), true);
      if (identity(now) === known.identity) return Buffer.from(known.content, "latin1");
    }
    return orNotFound(path, () => this.readSmall(file), true);
  }

  /** Reads a file whole, keeping it in `recent` when small. */
  private async readSmall(file: string): Promise<Buffer> {
    const handle = await fsp.open(file, "r");
    try {
      // The identity of what is read: a change while reading makes it stale for the next read.
      const info = await handle.stat({ bigint: true });
      if (info.isDirectory()) throw Object.assign(new Error(`${file} is a directory`), { code: "EISDIR" });
      // Read until the size fstat gave (as readFile does), or the end if the file shrank.
      const size = Number(info.size);
      const content = Buffer.allocUnsafe(size);
      let total = 0;
      while (total < size) {
        const { bytesRead } = await handle.read(content, total, size - total, total);
        if (bytesRead === 0) break;
        total += bytesRead;
      }
      const read = content.subarray(0, total);
      if (total <= RECENT_ENTRY_BYTES) this.recent.set(file, { identity: identity(info), content: read.toString("latin1") });
      return read;
    } finally {
      await handle.close();
    }
  }

  async putContent(path: string, content: Buffer, transient = false): Promise<void> {
    const file = this.resolve(path);
    // Write beside the target and rename over it, so no reader ever sees a half-written link.
    const temp = `${file}.tmp-${randomBytes(6).toString("hex")}`;
    try {
      const handle = await openInDir(temp);
      try {
        await handle.writeFile(content);
        if (!transient) await handle.sync();
      } finally {
        await handle.close();
      }
      await fsp.rename(temp, file);
    } catch (err) {
      // A full or failing disk leaves no half-written file behind.
      await fsp.rm(temp, { force: true }).catch(() => undefined);
      throw this.ledger.failed(err);
    }
    this.ledger.written();
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    const file = this.resolve(path);
    // Opening first makes a missing file fail here, not later in the stream; an open fd also
    // keeps reading the same bytes if the path is replaced or deleted meanwhile.
    const fd = await orNotFound(path, () => openFdAsync(file, fsConstants.O_RDONLY));
    const size = end ?? (await fstatAsync(fd)).size;
    return new FileReader(fd, offset, size);
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    const file = this.resolve(path);
    try {
      await fsp.mkdir(dirname(file), { recursive: true });
      const fd = await openFdAsync(file, append ? "a" : "w");
      const startSize = (await fstatAsync(fd)).size;
      return new FilesystemFileWriter(file, fd, startSize, this.ledger);
    } catch (err) {
      throw this.ledger.failed(err);
    }
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

  async walk(path: string): Promise<FileInfo[]> {
    const dir = this.resolve(path);
    const entries = await fsp.readdir(dir, { recursive: true, withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [];
      throw err;
    });
    const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
    const infos = await Promise.all(files.map((file) => fsp.lstat(file).catch(() => undefined)));
    // A file removed between the listing and its stat is not there.
    return files.flatMap((file, i) => {
      const info = infos[i];
      return info ? [{ path: `${path}${file.slice(dir.length)}`, size: info.size, modTime: info.mtime, isDir: false }] : [];
    });
  }

  async move(source: string, destination: string): Promise<void> {
    const from = this.resolve(source);
    const to = this.resolve(destination);
    try {
      await fsp.mkdir(dirname(to), { recursive: true });
      await orNotFound(source, () => fsp.rename(from, to));
    } catch (err) {
      throw this.ledger.failed(err);
    }
  }

  async delete(path: string): Promise<void> {
    const file = this.resolve(path);
    await orNotFound(path, () => fsp.lstat(file));
    await fsp.rm(file, { recursive: true, force: true });
  }

  async deleteObjects(paths: string[]): Promise<void> {
    const files = paths.map((path) => this.resolve(path));
    await Promise.all(
      files.map((file) =>
        fsp.unlink(file).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== "ENOENT") throw err;
        }),
      ),
    );
  }

  async removeEmptyDir(path: string): Promise<void> {
    await fsp.rmdir(this.resolve(path)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT" && err.code !== "ENOTEMPTY" && err.code !== "EEXIST") throw err;
    });
  }
}

/**
 * Opens a new file for writing, making its directory; again if an empty-directory removal (a
 * collection's marks) took it, or a parent mkdir had just made, meanwhile.
 */
async function openInDir(file: string): Promise<fsp.FileHandle> {
  for (let attempt = 1; ; attempt++) {
    try {
      await fsp.mkdir(dirname(file), { recursive: true });
      return await fsp.open(file, "w");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || attempt === 3) throw err;
    }
  }
}

/** Reads [position, end) of an fd in READ_CHUNK pieces, reusing the chunks released to it. */
class FileReader extends RecyclingReader {
  constructor(
    private readonly fd: number,
    private position: number,
    private readonly end: number,
  ) {
    super(READ_CHUNK, SPARE_CHUNKS);
  }

  override _read(): void {
    const length = Math.min(READ_CHUNK, this.end - this.position);
    if (length <= 0) {
      this.push(null);
      return;
    }
    const buffer = this.chunks.take();
    read(this.fd, buffer, 0, length, this.position, (err, bytes) => {
      if (err) return this.destroy(err);
      if (bytes === 0) return this.destroy(new Error("file ended before its size; was it truncated?"));
      this.position += bytes;
      this.push(bytes === READ_CHUNK ? buffer : buffer.subarray(0, bytes));
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    closeFd(this.fd, () => callback(err));
  }
}

/**
 * Appends with writev straight to the fd. Every FLUSH_BEHIND bytes it starts an fdatasync in
 * the background, so that the disk writes back while the upload still streams and commit's
 * final fsync has little left to do.
 */
const FLUSH_BEHIND = 32 * 1024 * 1024;
/**
 * What a writer takes in while a write is with the thread pool. Four concurrent 256 MiB pushes
 * peaked at 117-127 MiB of RSS with 2 MiB and 106-112 with 512 KiB, and single pushes ran as
 * fast (Node 24; all that waits goes out in one writev).
 */
const WRITE_BUFFER = 512 * 1024;

/** What of `buffers` a write of `written` bytes left. */
function unwritten(buffers: Buffer[], written: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = written;
  for (const buffer of buffers) {
    if (skip >= buffer.length) skip -= buffer.length;
    else {
      rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
      skip = 0;
    }
  }
  return rest;
}

class FilesystemFileWriter implements FileWriter {
  readonly stream: Writable;
  private written = 0;
  private unsynced = 0;
  private flushing: Promise<void> | undefined;
  private flushError: unknown;
  private closed = false;

  constructor(
    private readonly file: string,
    private readonly fd: number,
    readonly startSize: number,
    private readonly ledger: SpaceLedger,
  ) {
    this.stream = new Writable({
      highWaterMark: WRITE_BUFFER,
      writev: (chunks, callback) => {
        const next = (buffers: Buffer[]) =>
          writev(fd, buffers, (err, bytes) => {
            if (err) return callback(ledger.failed(err) as Error);
            this.written += bytes;
            this.flushBehind(bytes);
            // A short write (the disk filling up mid-call) is followed by the rest, which then says why.
            const rest = unwritten(buffers, bytes);
            if (rest.length === 0) return callback();
            if (bytes === 0) return callback(new Error(`no progress writing to ${file}`));
            next(rest);
          });
        next(chunks.map((c) => c.chunk as Buffer));
      },
    });
  }

  size(): number {
    return this.startSize + this.written;
  }

  private flushBehind(bytes: number): void {
    this.unsynced += bytes;
    if (this.unsynced < FLUSH_BEHIND || this.flushing) return;
    this.unsynced = 0;
    this.flushing = fdatasyncAsync(this.fd)
      .catch((err: unknown) => {
        this.flushError = err;
      })
      .finally(() => {
        this.flushing = undefined;
      });
  }

  private async finish(sync: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (!this.stream.writableFinished && !this.stream.destroyed) {
        await new Promise<void>((resolve, reject) => {
          this.stream.once("error", reject);
          this.stream.end(resolve);
        });
      }
      await this.flushing;
      if (this.flushError) throw this.flushError;
      if (sync) await fsyncAsync(this.fd);
    } catch (err) {
      throw this.ledger.failed(err);
    } finally {
      await closeFdAsync(this.fd);
    }
    if (sync) this.ledger.written();
  }

  close(): Promise<void> {
    return this.finish(false);
  }

  commit(): Promise<void> {
    return this.finish(true);
  }

  readBack(): Promise<ReadBack> {
    return fsp.open(this.file, "r");
  }

  async cancel(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.stream.destroy();
      await this.flushing;
      await closeFdAsync(this.fd).catch(() => undefined);
    }
    await fsp.rm(this.file, { force: true });
  }
}
