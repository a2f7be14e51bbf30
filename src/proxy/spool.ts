import { randomUUID } from "node:crypto";
import { mkdir, open, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { asError } from "../registry/errors.js";
import { Signal } from "./signal.js";

/**
 * The newest bytes stay in memory up to this much, so readers keeping up never touch the disk.
 * With the limit below, a fill's memory is under 2 MiB: four concurrent cold 256 MiB pulls of
 * different blobs peaked at 117-129 MiB of RSS with these, 137-144 with 2 and 4 MiB, and ran no
 * slower (Node 24; most of the rest is the peer's socket reads waiting for V8 to collect them).
 */
const TAIL_BYTES = 512 * 1024;
/** Appending waits when this much is not in the file yet (a disk slower than the network). */
const MAX_UNWRITTEN = 1024 * 1024;

interface Piece {
  start: number;
  chunk: Buffer;
}

/** What a spool writes to and reads back from (the shape of a node:fs FileHandle's). */
export interface SpoolFile {
  writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }>;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/**
 * A file that a blob fill appends to and its readers read back from at their own pace, so a late
 * or slow reader never holds the fetch back and no blob is held in memory: only its newest few
 * MiB, which readers that keep up take from memory. Writes are batched, one in flight. The file
 * is the store's upload where the store has local files (`over`), else a temporary one (`create`).
 * An upload that cannot take more (its disk is full) spills the rest into a temporary file: the
 * clients still get every byte, the store keeps nothing.
 */
export class Spool {
  /** Bytes appended. */
  length = 0;
  /** Bytes in the file. */
  private persisted = 0;
  private readonly tail: Piece[] = [];
  private writing = false;
  private writeError: Error | undefined;
  private readonly progress = new Signal();
  private readers = 0;
  private finished = false;
  private closed = false;
  /** Where bytes from `at` on went once the first file failed, and why it did. */
  private spill: { file: SpoolFile; at: number; cause: Error } | undefined;

  private constructor(
    private readonly file: SpoolFile,
    private readonly spillDir?: string,
  ) {}

  /** Spools into `file`, spilling into a temporary file in `spillDir` if it fails. */
  static over(file: SpoolFile, spillDir: string): Spool {
    return new Spool(file, spillDir);
  }

  /** A temporary file. */
  static async create(dir: string): Promise<Spool> {
    return new Spool(await temporaryFile(dir));
  }

  /** Why the first file failed, if it did: later bytes are only in the temporary one. */
  get spilledBecause(): Error | undefined {
    return this.spill?.cause;
  }

  /** Appends a chunk (which must not change afterwards); waits only when the file lags far behind. */
  async append(chunk: Buffer): Promise<void> {
    this.tail.push({ start: this.length, chunk });
    this.length += chunk.length;
    this.write();
    while (!this.writeError && this.length - this.persisted > MAX_UNWRITTEN) await this.progress.wait();
    if (this.writeError) throw this.writeError;
  }

  /** Resolves once every appended byte is in the file. */
  async drained(): Promise<void> {
    while (!this.writeError && this.persisted < this.length) await this.progress.wait();
    if (this.writeError) throw this.writeError;
  }

  /** Up to `max` bytes at `position` (< length) if they are still in memory. */
  recent(position: number, max: number): Buffer | undefined {
    const piece = this.pieceAt(position);
    if (!piece) return undefined;
    const offset = position - piece.start;
    return piece.chunk.subarray(offset, offset + Math.min(max, piece.chunk.length - offset));
  }

  /** Up to `buffer.length` bytes at `position` (< length), from the file: for what is no longer recent. */
  async readFile(position: number, buffer: Buffer): Promise<Buffer> {
    const { file, offset, end } = this.locate(position);
    const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, end - position), offset);
    return buffer.subarray(0, bytesRead);
  }

  /** The file that holds (or will hold) the byte at `position`, its offset there, and where that file's bytes end. */
  private locate(position: number): { file: SpoolFile; offset: number; end: number } {
    const { spill } = this;
    if (!spill) return { file: this.file, offset: position, end: this.persisted };
    return position < spill.at ? { file: this.file, offset: position, end: spill.at } : { file: spill.file, offset: position - spill.at, end: this.persisted };
  }

  private pieceAt(position: number): Piece | undefined {
    let low = 0;
    let high = this.tail.length - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      const piece = this.tail[mid]!;
      if (position < piece.start) high = mid - 1;
      else if (position >= piece.start + piece.chunk.length) low = mid + 1;
      else return piece;
    }
    return undefined;
  }

  /** Writes everything not yet in the file in one writev; the next batch starts when it is done. */
  private write(): void {
    if (this.writing || this.writeError || this.persisted === this.length) return;
    const pending = this.tail
      .filter((p) => p.start + p.chunk.length > this.persisted)
      .map((p) => (p.start < this.persisted ? p.chunk.subarray(this.persisted - p.start) : p.chunk));
    this.writing = true;
    const { file, offset } = this.locate(this.persisted);
    file.writev(pending, offset).then(
      ({ bytesWritten }) => {
        this.persisted += bytesWritten;
        this.writing = false;
        this.evict();
        this.progress.notify();
        this.write();
      },
      (err: unknown) => {
        if (this.spillDir && !this.spill) return this.spillFrom(this.spillDir, asError(err));
        this.fail(err);
      },
    );
  }

  /** Goes on writing into a temporary file, from the first byte the failed file lacks. */
  private spillFrom(dir: string, cause: Error): void {
    temporaryFile(dir).then(
      (file) => {
        if (this.closed) return void file.close().catch(() => undefined);
        this.spill = { file, at: this.persisted, cause };
        this.writing = false;
        this.write();
      },
      (err: unknown) => this.fail(err),
    );
  }

  private fail(err: unknown): void {
    this.writeError = asError(err);
    this.writing = false;
    this.progress.notify();
  }

  /** Drops the oldest pieces that are in the file while the tail is over its size. */
  private evict(): void {
    let bytes = this.length - (this.tail[0]?.start ?? this.length);
    while (this.tail.length > 0 && bytes > TAIL_BYTES) {
      const oldest = this.tail[0]!;
      if (oldest.start + oldest.chunk.length > this.persisted) return;
      this.tail.shift();
      bytes -= oldest.chunk.length;
    }
  }

  /** A reader starts using the spool (`release` when done); false when it is already closed. */
  retain(): boolean {
    if (this.closed) return false;
    this.readers++;
    return true;
  }

  release(): void {
    this.readers--;
    this.closeIfUnused();
  }

  /** The writer is done; the file closes when its last reader is. */
  finish(): void {
    this.finished = true;
    this.closeIfUnused();
  }

  private closeIfUnused(): void {
    if (!this.finished || this.readers > 0 || this.closed) return;
    this.closed = true;
    this.tail.length = 0;
    void this.file.close().catch(() => undefined);
    void this.spill?.file.close().catch(() => undefined);
  }
}

/** A file in `dir`, unlinked as soon as it is open: nothing is left behind, even after a kill -9. */
async function temporaryFile(dir: string): Promise<FileHandle> {
  const path = join(dir, `lain-registry-spool-${randomUUID()}`);
  let file: FileHandle;
  try {
    file = await open(path, "w+", 0o600);
  } catch (err) {
    // The directory went (a temp cleaner): it is the mirror's, made at start, so make it again.
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    file = await open(path, "w+", 0o600);
  }
  await unlink(path).catch(() => undefined);
  return file;
}
