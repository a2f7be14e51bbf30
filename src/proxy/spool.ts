import { open, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { randomUUID } from "node:crypto";

/**
 * A temporary file that a blob fill appends to and its readers read back from at their own pace,
 * so a late or slow reader never holds the fetch back and no blob is held in memory. The file is
 * unlinked as soon as it is open: nothing is left behind, even after a kill -9.
 */
export class Spool {
  private readers = 0;
  private finished = false;
  private closed = false;

  private constructor(private readonly file: FileHandle) {}

  static async create(dir: string): Promise<Spool> {
    const path = join(dir, `lain-registry-spool-${randomUUID()}`);
    const file = await open(path, "w+", 0o600);
    await unlink(path).catch(() => undefined);
    return new Spool(file);
  }

  async append(chunk: Buffer, position: number): Promise<void> {
    for (let done = 0; done < chunk.length; ) {
      const { bytesWritten } = await this.file.write(chunk, done, chunk.length - done, position + done);
      done += bytesWritten;
    }
  }

  async read(position: number, length: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await this.file.read(buffer, 0, length, position);
    return bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
  }

  /** A reader starts using the file (`release` when done); false when the file is already closed. */
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
    void this.file.close().catch(() => undefined);
  }
}
