import type { Readable, Writable } from "node:stream";

/**
 * The storage contract, modelled on distribution's storagedriver: it knows paths and bytes,
 * never images. Paths are absolute within the store ("/docker/registry/v2/..."), use "/" and
 * are produced by layout.ts only.
 */
export interface StorageDriver {
  readonly name: string;
  /** Whole content of a small object (links, manifests, state files). */
  getContent(path: string): Promise<Buffer>;
  /**
   * Replaces the object atomically: readers see the old or the new content, never a mix.
   * `transient`: it need not survive a crash of the machine (a collection's marks), so the
   * filesystem does not sync it.
   */
  putContent(path: string, content: Buffer, transient?: boolean): Promise<void>;
  /** Streams the object from `offset` (inclusive) to `end` (exclusive, default: its end). */
  reader(path: string, offset?: number, end?: number): Promise<Readable>;
  /**
   * A writer that appends to the object (append=true resumes what an earlier writer left,
   * possibly one of another process) or starts it empty.
   */
  writer(path: string, append: boolean): Promise<FileWriter>;
  /**
   * Size and kind of an object or directory. An object a writer has closed but not committed
   * reports the bytes written so far.
   */
  stat(path: string): Promise<FileInfo>;
  /** Full paths of the direct children of a directory, in no particular order. */
  list(path: string): Promise<string[]>;
  /**
   * Every object below a directory, at any depth, with its size and time (none when the
   * directory does not exist): one request per thousand objects on stores that list that way.
   */
  walk(path: string): Promise<FileInfo[]>;
  /** Moves an object; the destination is replaced atomically. */
  move(source: string, destination: string): Promise<void>;
  /** Deletes an object or a whole directory tree, including writes not yet committed. */
  delete(path: string): Promise<void>;
  /**
   * Deletes these objects (never directories), each whether it exists or not, in as few requests
   * as the store allows: what a collection removes by the thousand.
   */
  deleteObjects(paths: string[]): Promise<void>;
  /**
   * A short-lived URL from which a client may fetch the object directly (GET only), for
   * drivers whose store can serve it; undefined otherwise.
   */
  redirectURL?(path: string): Promise<string | undefined>;
  /** Checks that the store is usable (exists, credentials work), failing with a clear message. */
  verify?(): Promise<void>;
  /** Removes a directory if it is empty (stores with directories); anything else stays as it is. */
  removeEmptyDir?(path: string): Promise<void>;
  /** The room left on the volume of a store on local disk (undefined elsewhere). */
  space?(): Promise<StoreSpace>;
}

export interface StoreSpace {
  /** Bytes an unprivileged writer may still write. */
  free: number;
  /** The volume's size. */
  total: number;
  /** When a write last failed for lack of space, if none has succeeded since. */
  fullSince: Date | undefined;
}

/**
 * A reader whose chunks the consumer may hand back once it is done with them (a socket write
 * has completed), so the next reads reuse them instead of allocating: pulls get ~30% faster.
 * Consumers that never release lose nothing but the reuse.
 */
export interface RecyclingReadable extends Readable {
  release(chunk: Buffer): void;
}

export function isRecycling(stream: Readable): stream is RecyclingReadable {
  return typeof (stream as Partial<RecyclingReadable>).release === "function";
}

export interface FileInfo {
  path: string;
  size: number;
  modTime: Date;
  isDir: boolean;
}

export interface FileWriter {
  /** Bytes the object held before this writer appended anything. */
  readonly startSize: number;
  /** Where the appended bytes go; end it (or let pipeline end it) before close/commit. */
  readonly stream: Writable;
  /** Bytes written so far, including startSize. */
  size(): number;
  /** Persists what was written so that a later writer(path, true) resumes after it. */
  close(): Promise<void>;
  /** Makes the content durable and final: it survives a crash once this resolves. */
  commit(): Promise<void>;
  /** Discards the object. */
  cancel(): Promise<void>;
  /**
   * Reads what this writer has written, by position, while it writes: for drivers whose objects
   * are local files. The handle keeps reading the same bytes after the object is moved or deleted.
   */
  readBack?(): Promise<ReadBack>;
}

/** Positional reads of a file being written (the shape of a node:fs FileHandle's). */
export interface ReadBack {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

export class PathNotFoundError extends Error {
  constructor(readonly path: string) {
    super(`path not found: ${path}`);
    this.name = "PathNotFoundError";
  }
}

export class InvalidPathError extends Error {
  constructor(readonly path: string) {
    super(`invalid storage path: ${path}`);
    this.name = "InvalidPathError";
  }
}

export function isPathNotFound(err: unknown): err is PathNotFoundError {
  return err instanceof PathNotFoundError;
}

/** Paths are absolute, "/"-separated, and never contain "." or ".." segments or NULs. */
export function checkPath(path: string): void {
  if (!path.startsWith("/") || path.includes("\0") || path.includes("//")) throw new InvalidPathError(path);
  for (const segment of path.split("/").slice(1)) {
    if (segment === "." || segment === "..") throw new InvalidPathError(path);
  }
}

/** Runs fn and answers undefined when the path it touches does not exist. */
export async function unlessMissing<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (isPathNotFound(err)) return undefined;
    throw err;
  }
}

/** The children of a directory; none when it does not exist. */
export async function listIfPresent(driver: StorageDriver, dir: string): Promise<string[]> {
  return (await unlessMissing(() => driver.list(dir))) ?? [];
}

export async function exists(driver: StorageDriver, path: string): Promise<boolean> {
  return (await unlessMissing(() => driver.stat(path))) !== undefined;
}

/** Deletes a path, answering whether it existed. */
export async function deleteIfPresent(driver: StorageDriver, path: string): Promise<boolean> {
  try {
    await driver.delete(path);
    return true;
  } catch (err) {
    if (isPathNotFound(err)) return false;
    throw err;
  }
}

/**
 * The store failed and retrying did not help (5xx, timeouts, resets): the request gets a
 * retryable 503 instead of hanging or a bare 500.
 */
export class StorageUnavailableError extends Error {
  constructor(
    readonly path: string,
    override readonly cause: unknown,
  ) {
    super(`storage unavailable for ${path}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "StorageUnavailableError";
  }
}

/**
 * Errors of a local store's system calls that say the store itself cannot take the write (a full
 * or failing disk), not that the request was wrong: the request fails, never the process.
 */
const FULL_CODES = new Set(["ENOSPC", "EDQUOT"]);
const FAILING_CODES = new Set(["EIO", "EROFS", "EFBIG", "EACCES", "EPERM", "EMFILE", "ENFILE", "ENOMEM"]);

export interface StoreFault {
  /** full: no room left (507); failing: the disk or the object store cannot take it now (503). */
  kind: "full" | "failing";
  /** What the store said: an errno code, or the object store's error. */
  cause: string;
}

/** What an error of the store means for the request, or undefined when it is not the store's. */
export function storeFault(err: unknown): StoreFault | undefined {
  if (err instanceof StorageUnavailableError) return { kind: "failing", cause: err.message };
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === undefined) return undefined;
  if (FULL_CODES.has(code)) return { kind: "full", cause: code };
  if (FAILING_CODES.has(code)) return { kind: "failing", cause: code };
  return undefined;
}
