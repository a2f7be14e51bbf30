import { Readable, Writable } from "node:stream";
import {
  checkPath,
  PathNotFoundError,
  type FileInfo,
  type FileWriter,
  type StorageDriver,
} from "./driver.js";

interface MemoryObject {
  chunks: Buffer[];
  size: number;
  modTime: Date;
}

function concat(obj: MemoryObject): Buffer {
  if (obj.chunks.length !== 1) obj.chunks = [Buffer.concat(obj.chunks, obj.size)];
  return obj.chunks[0] ?? Buffer.alloc(0);
}

/** A driver that keeps everything in a Map: for tests and throw-away instances. */
export class InMemoryDriver implements StorageDriver {
  readonly name = "inmemory";
  private readonly objects = new Map<string, MemoryObject>();

  private get(path: string): MemoryObject {
    checkPath(path);
    const obj = this.objects.get(path);
    if (!obj) throw new PathNotFoundError(path);
    return obj;
  }

  private isDir(path: string): boolean {
    const prefix = path === "/" ? "/" : `${path}/`;
    for (const key of this.objects.keys()) if (key.startsWith(prefix)) return true;
    return false;
  }

  async getContent(path: string): Promise<Buffer> {
    return Buffer.from(concat(this.get(path)));
  }

  async putContent(path: string, content: Buffer): Promise<void> {
    checkPath(path);
    this.objects.set(path, { chunks: [Buffer.from(content)], size: content.length, modTime: new Date() });
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    const data = concat(this.get(path));
    return Readable.from([data.subarray(offset, end ?? data.length)]);
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    checkPath(path);
    const existing = append ? this.objects.get(path) : undefined;
    const obj: MemoryObject = existing ?? { chunks: [], size: 0, modTime: new Date() };
    this.objects.set(path, obj);
    const startSize = obj.size;
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        obj.chunks.push(Buffer.from(chunk));
        obj.size += chunk.length;
        obj.modTime = new Date();
        callback();
      },
    });
    const settle = () =>
      stream.writableFinished || stream.destroyed
        ? Promise.resolve()
        : new Promise<void>((resolve) => stream.end(resolve));
    return {
      startSize,
      stream,
      size: () => obj.size,
      close: settle,
      commit: settle,
      cancel: async () => {
        stream.destroy();
        this.objects.delete(path);
      },
    };
  }

  async stat(path: string): Promise<FileInfo> {
    checkPath(path);
    const obj = this.objects.get(path);
    if (obj) return { path, size: obj.size, modTime: obj.modTime, isDir: false };
    if (this.isDir(path)) return { path, size: 0, modTime: new Date(0), isDir: true };
    throw new PathNotFoundError(path);
  }

  async list(path: string): Promise<string[]> {
    checkPath(path);
    const prefix = path === "/" ? "/" : `${path}/`;
    const children = new Set<string>();
    for (const key of this.objects.keys()) {
      if (!key.startsWith(prefix)) continue;
      const name = key.slice(prefix.length).split("/")[0];
      if (name) children.add(prefix + name);
    }
    if (children.size === 0) throw new PathNotFoundError(path);
    return [...children];
  }

  async walk(path: string): Promise<FileInfo[]> {
    checkPath(path);
    const prefix = `${path}/`;
    return [...this.objects.entries()].filter(([key]) => key.startsWith(prefix)).map(([key, obj]) => ({ path: key, size: obj.size, modTime: obj.modTime, isDir: false }));
  }

  async move(source: string, destination: string): Promise<void> {
    const obj = this.get(source);
    checkPath(destination);
    this.objects.set(destination, obj);
    this.objects.delete(source);
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    const prefix = `${path}/`;
    let found = this.objects.delete(path);
    for (const key of [...this.objects.keys()]) {
      if (key.startsWith(prefix)) {
        this.objects.delete(key);
        found = true;
      }
    }
    if (!found) throw new PathNotFoundError(path);
  }

  deleteObjects(paths: string[]): Promise<void> {
    paths.forEach(checkPath);
    for (const path of paths) this.objects.delete(path);
    return Promise.resolve();
  }
}
