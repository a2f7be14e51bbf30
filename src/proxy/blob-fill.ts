import type { Hash } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";
import { digestAlgorithm, hashToDigest, newHash, type Digest } from "../registry/digest.js";
import { asError, RegistryError } from "../registry/errors.js";
import type { BlobSink } from "../registry/uploads.js";
import { RecyclingReader } from "../storage/chunk-pool.js";
import { Signal } from "./signal.js";
import type { Spool } from "./spool.js";
import { UpstreamError } from "./upstream.js";

/** Readers take the spool's bytes in pieces of at most this size. */
const READ_CHUNK = 1024 * 1024;
/** Chunks a reader keeps for reuse once the client's socket has taken them. */
const SPARE_CHUNKS = 3;
/** A transfer the peer cuts short is asked again for its rest this many times, waiting longer each time. */
const RESUMES = 3;
const RESUME_BACKOFF_MS = 100;

/** Where a fill keeps the blob: `spooled` when its spool is the store's upload (nothing to copy). */
export interface FillStore {
  sink: BlobSink;
  spooled: boolean;
}

export interface FillSource {
  digest: Digest;
  size: number;
  /** The peer's response body. */
  body: Readable;
  /** Asks the peer again for the bytes from `start` on (a Range request). */
  resume?: (start: number) => Promise<Readable>;
}

/**
 * One fetch of a blob from the peer, shared by every client that wants it meanwhile. Bytes go
 * to a spool that readers follow at their own pace (a late joiner starts with what has arrived
 * and then keeps up); the store keeps them as an upload session, which is the spool itself where
 * the store has local files and a copy from it otherwise. The last byte is held back from
 * readers until the digest is verified, so a peer that lies yields a broken transfer, never a
 * complete-looking wrong one; the upload becomes a blob only once verified.
 */
export class BlobFill {
  readonly digest: Digest;
  readonly size: number;
  /** Settles when the fill is over (verified and cached, verified only, or failed); never rejects. */
  readonly done: Promise<void>;
  /** Settles when joining makes no sense any more: the fill failed, or it is done. */
  readonly joinable: Promise<void>;
  private endJoining!: () => void;
  private verified = false;
  private failure: Error | undefined;
  private readonly progress = new Signal();
  /** The peer's body being read: the first response, or the latest resumed one. */
  private body: Readable;
  private firstBody: number | undefined;

  constructor(
    source: FillSource,
    private readonly spool: Spool,
    store: FillStore | undefined,
    private readonly log: Logger,
  ) {
    this.digest = source.digest;
    this.size = source.size;
    this.body = source.body;
    this.joinable = new Promise((resolve) => (this.endJoining = resolve));
    // The spool stays open to joiners until the store has its copy (or gave up on it).
    this.done = this.run(source, store).finally(() => {
      spool.finish();
      this.endJoining();
    });
  }

  /** Bytes that came with the first response (all of them unless it was cut and resumed). */
  get firstBodyBytes(): number {
    return this.firstBody ?? this.spool.length;
  }

  /** Why the fill failed, once it has. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Bytes [start, end) as they arrive; undefined when the fill is over and its spool gone. */
  reader(start: number, end: number): Readable | undefined {
    if (!this.spool.retain()) return undefined;
    return new FillReader(this, this.spool, start, end);
  }

  /** Readers may have everything once verified, and all but the last byte before. */
  visible(): number {
    const received = this.spool.length;
    return this.verified ? received : Math.max(0, Math.min(received, this.size - 1));
  }

  /** Resolves when more is visible, or the fill failed. */
  progressed(): Promise<void> {
    return this.progress.wait();
  }

  private async run(source: FillSource, store: FillStore | undefined): Promise<void> {
    // A copy's reader is taken now, so the spool stays open for it.
    const copy = store && !store.spooled ? this.reader(0, this.size) : undefined;
    try {
      await this.receive(source);
    } catch (err) {
      this.failure = asError(err);
      this.progress.notify();
      this.endJoining();
      this.body.destroy();
      this.log.warn({ digest: this.digest, err: this.failure.message }, "mirror: fetching a blob from upstream failed; nothing cached");
    }
    if (store) await this.keep(store.sink, copy);
  }

  /**
   * Makes the verified bytes the store's blob; on any failure the store keeps nothing. A copy
   * starts once the peer's transfer is over: on a machine of few cores, copying (and syncing)
   * alongside it would take the clients' pace down to the disk's.
   */
  private async keep(sink: BlobSink, copy: Readable | undefined): Promise<void> {
    try {
      if (this.failure) throw this.failure;
      if (copy) await pipeline(copy, sink.stream);
      else await this.spool.drained();
      const spilled = this.spool.spilledBecause;
      if (spilled) throw spilled;
      await sink.commit(this.digest);
    } catch (err) {
      copy?.destroy();
      await sink.abort().catch(() => undefined);
      // Clients got their bytes from the spool; the store just does not keep a copy this time.
      if (!this.failure) this.log.warn({ digest: this.digest, err: String(err) }, "mirror: could not cache a blob (served it uncached)");
    }
  }

  /**
   * Copies the peer's bytes to the spool, asking for the rest where its transfer broke off (its
   * clients see one unbroken body), then verifies them.
   */
  private async receive(source: FillSource): Promise<void> {
    const hash = newHash(digestAlgorithm(this.digest));
    let cut = await this.copy(this.body, hash);
    if (cut) this.firstBody = this.spool.length;
    for (let resumed = 0; cut; resumed++) {
      if (!source.resume || resumed === RESUMES) throw cut;
      this.log.info({ digest: this.digest, at: this.spool.length, err: cut.message }, "mirror: upstream cut a blob short; asking for the rest");
      await delay(RESUME_BACKOFF_MS * 2 ** resumed);
      try {
        this.body = await source.resume(this.spool.length);
      } catch (err) {
        // A peer still down or refusing the range: that attempt counts, the next may work.
        cut = asError(err);
        continue;
      }
      cut = await this.copy(this.body, hash);
    }
    const actual = hashToDigest(digestAlgorithm(this.digest), hash);
    if (actual !== this.digest) throw new UpstreamError(`upstream sent bytes whose digest is ${actual} for blob ${this.digest}`);
    this.verified = true;
    this.progress.notify();
  }

  /** Appends a body's bytes to the spool; resolves with what cut it off if it ended before the blob. */
  private async copy(body: Readable, hash: Hash): Promise<Error | undefined> {
    const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (err) {
        return asError(err);
      }
      if (next.done) {
        return this.spool.length < this.size ? new UpstreamError(`upstream ended blob ${this.digest} after ${this.spool.length} of ${this.size} bytes`) : undefined;
      }
      const chunk = next.value;
      if (this.spool.length + chunk.length > this.size) {
        throw new UpstreamError(`upstream sent more than the ${this.size} bytes it announced for blob ${this.digest}`);
      }
      hash.update(chunk);
      const appended = this.spool.append(chunk);
      this.progress.notify();
      await appended;
    }
  }
}

/**
 * Follows a fill from `position` to `end`: recent bytes straight from the spool's memory, older
 * ones read from its file into chunks the client's socket hands back (a recycling reader).
 */
class FillReader extends RecyclingReader {
  private pumping = false;

  constructor(
    private readonly fill: BlobFill,
    private readonly spool: Spool,
    private position: number,
    private readonly end: number,
  ) {
    super(READ_CHUNK, SPARE_CHUNKS);
  }

  override _read(): void {
    void this.pump();
  }

  /** Pushes what is visible until the stream is full, waiting for the fill when it is not ahead. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        if (this.position >= this.end) {
          this.push(null);
          return;
        }
        const available = Math.min(this.fill.visible(), this.end);
        if (this.position < available) {
          const max = Math.min(available - this.position, READ_CHUNK);
          const chunk = this.spool.recent(this.position, max) ?? (await this.spool.readFile(this.position, this.chunks.take().subarray(0, max)));
          if (chunk.length === 0) throw new Error(`spool of ${this.fill.digest} ended early at ${this.position}`);
          this.position += chunk.length;
          if (!this.push(chunk)) return;
        } else if (this.fill.error) {
          // The fill logged why; each reader's client only sees its transfer end.
          throw new RegistryError("UNAVAILABLE", `fetching blob ${this.fill.digest} failed: ${this.fill.error.message}`);
        } else {
          await this.fill.progressed();
        }
      }
    } catch (err) {
      this.destroy(asError(err));
    } finally {
      this.pumping = false;
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.spool.release();
    callback(err);
  }
}
