import { Readable } from "node:stream";
import type { RecyclingReadable } from "./driver.js";

/**
 * The chunks a recycling reader hands out and takes back once a consumer is done with them (see
 * RecyclingReadable): reused memory costs no page faults, fresh memory does, for every MiB.
 */
export class ChunkPool {
  private readonly spare: Buffer[] = [];
  private readonly own = new WeakSet<ArrayBufferLike>();

  constructor(
    readonly size: number,
    /** Spare chunks kept: enough to cover the socket writes in flight. */
    private readonly keep: number,
  ) {}

  take(): Buffer {
    const spare = this.spare.pop();
    if (spare) return spare;
    const chunk = Buffer.allocUnsafeSlow(this.size);
    this.own.add(chunk.buffer);
    return chunk;
  }

  /** Takes back a chunk (or a part of one) this pool handed out; others are left alone. */
  give(chunk: Buffer): void {
    if (this.own.has(chunk.buffer) && this.spare.length < this.keep) this.spare.push(Buffer.from(chunk.buffer, 0, this.size));
  }
}

/** A reader of chunks from a pool, which consumers hand back (`release`) once done with them. */
export abstract class RecyclingReader extends Readable implements RecyclingReadable {
  protected readonly chunks: ChunkPool;

  constructor(chunkSize: number, spareChunks: number) {
    super({ highWaterMark: chunkSize });
    this.chunks = new ChunkPool(chunkSize, spareChunks);
  }

  release(chunk: Buffer): void {
    this.chunks.give(chunk);
  }
}
