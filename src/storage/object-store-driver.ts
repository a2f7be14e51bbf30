import { Readable } from "node:stream";
import {
  checkPath,
  PathNotFoundError,
  StorageUnavailableError,
  type FileInfo,
  type FileWriter,
  type StorageDriver,
} from "./driver.js";
import { findUpload, MultipartWriter, sumParts } from "./multipart-writer.js";
import { MAX_PAGES, type ListPage, type ObjectStore } from "./object-store.js";

/** How long a presigned blob URL stays valid (distribution uses 20 minutes). */
const REDIRECT_SECONDS = 20 * 60;

export interface ObjectStoreDriverOptions {
  /** storage.<driver>.rootdirectory: prefix of every key. */
  rootDirectory: string;
  /** chunksize: the part size uploads are buffered into. */
  partSize: number;
  /** Objects larger than this are moved by parallel part copies. */
  copyThreshold: number;
  copyChunk: number;
  copyConcurrency: number;
}

/** distribution's s3 and oss drivers, key for key: rootdirectory + path, without a leading "/". */
export function objectKey(rootDirectory: string, path: string): string {
  return `${rootDirectory.replace(/\/+$/, "")}${path}`.replace(/^\/+/, "");
}

/**
 * A StorageDriver over an object store. Directories are key prefixes; an upload in progress
 * is an unfinished multipart upload that stat() and delete() know about.
 */
export class ObjectStoreDriver implements StorageDriver {
  constructor(
    readonly store: ObjectStore,
    readonly options: ObjectStoreDriverOptions,
  ) {}

  get name(): string {
    return this.store.name;
  }

  private key(path: string): string {
    checkPath(path);
    return objectKey(this.options.rootDirectory, path);
  }

  /** Runs a store call, turning "not found" into PathNotFoundError and outages into StorageUnavailableError. */
  private async call<T>(path: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof PathNotFoundError || err instanceof StorageUnavailableError) throw err;
      const kind = this.store.classify(err);
      if (kind === "missing") throw new PathNotFoundError(path);
      if (kind === "unavailable") throw new StorageUnavailableError(path, err);
      throw err;
    }
  }

  verify(): Promise<void> {
    return this.store.verify();
  }

  async getContent(path: string): Promise<Buffer> {
    const key = this.key(path);
    const content = await this.call(path, () => this.store.readAll(key));
    if (!content) throw new PathNotFoundError(path);
    return content;
  }

  async putContent(path: string, content: Buffer): Promise<void> {
    const key = this.key(path);
    await this.call(path, () => this.store.write(key, content));
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    const key = this.key(path);
    // Callers that know the size (blob GETs) pass `end`: no HEAD round trip then.
    const stop = end ?? (await this.stat(path)).size;
    if (stop <= offset) {
      await this.stat(path);
      return Readable.from([]);
    }
    return this.call(path, () => this.store.read(key, offset, stop));
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    const key = this.key(path);
    return this.call(path, () => MultipartWriter.open(this.store, key, this.options.partSize, append));
  }

  async stat(path: string): Promise<FileInfo> {
    const key = this.key(path);
    return this.call(path, async () => {
      const object = await this.store.head(key);
      if (object) return { path, size: object.size, modTime: object.modTime, isDir: false };
      // A miss is common (every "does this layer exist?" of a push): ask both questions at once.
      const [page, upload] = await Promise.all([this.store.list(`${key}/`, undefined, undefined), findUpload(this.store, key)]);
      if (page.objects.length > 0 || page.prefixes.length > 0) return { path, size: 0, modTime: new Date(0), isDir: true };
      if (upload) return { path, size: sumParts(await this.store.listParts(key, upload)), modTime: new Date(), isDir: false };
      throw new PathNotFoundError(path);
    });
  }

  private async *pages(path: string, prefix: string, delimiter?: string): AsyncGenerator<ListPage> {
    let token: string | undefined;
    for (let i = 0; i < MAX_PAGES; i++) {
      const page = await this.call(path, () => this.store.list(prefix, delimiter, token));
      yield page;
      if (!page.next) return;
      token = page.next;
    }
  }

  async list(path: string): Promise<string[]> {
    const prefix = path === "/" ? this.key("/") : `${this.key(path)}/`;
    const base = path === "/" ? "" : path;
    const children: string[] = [];
    for await (const page of this.pages(path, prefix, "/")) {
      for (const p of page.prefixes) children.push(`${base}/${p.slice(prefix.length).replace(/\/$/, "")}`);
      for (const { key } of page.objects) children.push(`${base}/${key.slice(prefix.length)}`);
    }
    if (children.length === 0) throw new PathNotFoundError(path);
    return children;
  }

  async walk(path: string): Promise<FileInfo[]> {
    const prefix = `${this.key(path)}/`;
    const found: FileInfo[] = [];
    for await (const page of this.pages(path, prefix)) {
      for (const o of page.objects) found.push({ path: `${path}/${o.key.slice(prefix.length)}`, size: o.size, modTime: o.modTime, isDir: false });
    }
    return found;
  }

  async move(source: string, destination: string): Promise<void> {
    const from = this.key(source);
    const to = this.key(destination);
    const { size } = await this.stat(source);
    await this.call(source, () => (size <= this.options.copyThreshold ? this.store.copy(from, to) : this.copyInParts(from, to, size)));
    await this.delete(source);
  }

  /** Large objects are copied in parallel ranges, as distribution does above multipartcopythresholdsize. */
  private async copyInParts(from: string, to: string, size: number): Promise<void> {
    const { copyChunk: chunk, copyConcurrency } = this.options;
    const uploadId = await this.store.createUpload(to);
    const count = Math.ceil(size / chunk);
    const etags = new Array<string>(count);
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        const start = i * chunk;
        etags[i] = await this.store.copyPart(to, uploadId, i + 1, from, start, Math.min(size, start + chunk) - 1);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(copyConcurrency, count) }, worker));
      await this.store.completeUpload(
        to,
        uploadId,
        etags.map((etag, i) => ({ number: i + 1, etag, size: Math.min(chunk, size - i * chunk) })),
      );
    } catch (err) {
      await this.store.abortUpload(to, uploadId).catch(() => undefined);
      throw err;
    }
  }

  async delete(path: string): Promise<void> {
    const key = this.key(path);
    const within = (k: string) => k === key || k.startsWith(`${key}/`);
    const keys: string[] = [];
    for await (const page of this.pages(path, key)) keys.push(...page.objects.map((o) => o.key).filter(within));
    const uploads = (await this.call(path, () => this.store.listUploads(key))).filter((u) => within(u.key));
    if (keys.length === 0 && uploads.length === 0) throw new PathNotFoundError(path);
    await this.deleteKeys(path, keys);
    for (const u of uploads) await this.call(path, () => this.store.abortUpload(u.key, u.id)).catch(() => undefined);
  }

  async deleteObjects(paths: string[]): Promise<void> {
    if (paths.length > 0) await this.deleteKeys(paths[0] as string, paths.map((p) => this.key(p)));
  }

  /** A DeleteObjects request takes at most 1,000 keys. */
  private async deleteKeys(path: string, keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      await this.call(path, () => this.store.deleteMany(batch));
    }
  }

  async redirectURL(path: string): Promise<string | undefined> {
    const key = this.key(path);
    return this.store.presign(key, REDIRECT_SECONDS);
  }
}
