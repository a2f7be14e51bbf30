import { Readable, type Writable } from "node:stream";
import type { Logger } from "pino";
import { digestAlgorithm, hashToDigest, newHash, type Digest } from "../registry/digest.js";
import type { BlobSink } from "../registry/uploads.js";
import type { Spool } from "./spool.js";
import { UpstreamError } from "./upstream.js";

/** Readers take the spool's bytes in pieces of at most this size. */
const READ_CHUNK = 1024 * 1024;

export interface FillSource {
  digest: Digest;
  size: number;
  /** The peer's response body. */
  body: Readable;
}

/**
 * One fetch of a blob from the peer, shared by every client that wants it meanwhile. Bytes go
 * to a spool that readers follow at their own pace (a late joiner starts with what has arrived
 * and then keeps up) and to the store as an upload session. The last byte is held back from
 * readers until the digest is verified, so a peer that lies yields a broken transfer, never a
 * complete-looking wrong one; the store's copy becomes a blob only once verified.
 */
export class BlobFill {
  readonly digest: Digest;
  readonly size: number;
  /** Settles when the fill is over (verified and cached, verified only, or failed); never rejects. */
  readonly done: Promise<void>;
  /** Settles when joining makes no sense any more: the fill failed, or it is done. */
  readonly joinable: Promise<void>;
  private endJoining!: () => void;
  private written = 0;
  private verified = false;
  private failure: Error | undefined;
  private changed!: Promise<void>;
  private wake!: () => void;

  constructor(
    source: FillSource,
    private readonly spool: Spool,
    sink: BlobSink | undefined,
    private readonly log: Logger,
  ) {
    this.digest = source.digest;
    this.size = source.size;
    this.arm();
    this.joinable = new Promise((resolve) => (this.endJoining = resolve));
    // The spool stays open to joiners until the store has its copy (or gave up on it).
    this.done = this.run(source.body, sink).finally(() => {
      spool.finish();
      this.endJoining();
    });
  }

  /** Why the fill failed, once it has. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Bytes [start, end) as they arrive; undefined when the fill is over and its spool gone. */
  reader(start: number, end: number): Readable | undefined {
    if (!this.spool.retain()) return undefined;
    return Readable.from(this.follow(start, end), { objectMode: false });
  }

  private async *follow(start: number, end: number): AsyncGenerator<Buffer> {
    try {
      let position = start;
      while (position < end) {
        const available = Math.min(this.visible(), end);
        if (position < available) {
          const chunk = await this.spool.read(position, Math.min(available - position, READ_CHUNK));
          if (chunk.length === 0) throw new Error(`spool of ${this.digest} ended early at ${position}`);
          position += chunk.length;
          yield chunk;
        } else if (this.failure) {
          throw this.failure;
        } else {
          await this.changed;
        }
      }
    } finally {
      this.spool.release();
    }
  }

  /** Readers may have everything once verified, and all but the last byte before. */
  private visible(): number {
    return this.verified ? this.written : Math.max(0, Math.min(this.written, this.size - 1));
  }

  private arm(): void {
    this.changed = new Promise((resolve) => (this.wake = resolve));
  }

  private notify(): void {
    const wake = this.wake;
    this.arm();
    wake();
  }

  private async run(body: Readable, sink: BlobSink | undefined): Promise<void> {
    let storeError: unknown;
    sink?.stream.on("error", (err) => (storeError ??= err));
    try {
      await this.receive(body, sink && (() => (storeError === undefined ? sink.stream : undefined)));
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      this.notify();
      this.endJoining();
      body.destroy();
      await sink?.abort().catch(() => undefined);
      this.log.warn({ digest: this.digest, err: this.failure.message }, "mirror: fetching a blob from upstream failed; nothing cached");
      return;
    }
    if (!sink) return;
    if (storeError === undefined) {
      try {
        await sink.commit(this.digest);
        return;
      } catch (err) {
        storeError = err;
      }
    }
    // Clients got their bytes from the spool; the store just does not keep a copy this time.
    await sink.abort().catch(() => undefined);
    this.log.warn({ digest: this.digest, err: String(storeError) }, "mirror: could not cache a blob (served it uncached)");
  }

  /** Copies the peer's bytes to the spool and the store, then verifies them. */
  private async receive(body: Readable, store: (() => Writable | undefined) | undefined): Promise<void> {
    const hash = newHash(digestAlgorithm(this.digest));
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (this.written + chunk.length > this.size) {
        throw new UpstreamError(`upstream sent more than the ${this.size} bytes it announced for blob ${this.digest}`);
      }
      hash.update(chunk);
      await this.spool.append(chunk, this.written);
      this.written += chunk.length;
      this.notify();
      const stream = store?.();
      if (stream && !stream.write(chunk)) await drained(stream);
    }
    if (this.written !== this.size) {
      throw new UpstreamError(`upstream ended blob ${this.digest} after ${this.written} of ${this.size} bytes`);
    }
    const actual = hashToDigest(digestAlgorithm(this.digest), hash);
    if (actual !== this.digest) throw new UpstreamError(`upstream sent bytes whose digest is ${actual} for blob ${this.digest}`);
    this.verified = true;
    this.notify();
  }
}

/** Waits until a stream wants more, or can take nothing more (failed or closed). */
function drained(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("error", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("error", done);
    stream.on("close", done);
  });
}
