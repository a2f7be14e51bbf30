import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import { digestAlgorithm, hashToDigest, newHash, type Digest } from "../registry/digest.js";
import { RegistryError } from "../registry/errors.js";
import type { BlobSink } from "../registry/uploads.js";
import { Signal } from "./signal.js";
import type { Spool } from "./spool.js";
import { UpstreamError } from "./upstream.js";

/** Readers take the spool's bytes from its file in pieces of at most this size. */
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
  private verified = false;
  private failure: Error | undefined;
  private readonly progress = new Signal();

  constructor(
    source: FillSource,
    private readonly spool: Spool,
    sink: BlobSink | undefined,
    private readonly log: Logger,
  ) {
    this.digest = source.digest;
    this.size = source.size;
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
    const stream = Readable.from(this.follow(start, end), { objectMode: false });
    // On "close", not in the generator: a stream destroyed before its first read never runs it.
    stream.once("close", () => this.spool.release());
    return stream;
  }

  private async *follow(start: number, end: number): AsyncGenerator<Buffer> {
    let position = start;
    while (position < end) {
      const available = Math.min(this.visible(), end);
      if (position < available) {
        const chunk = await this.spool.read(position, Math.min(available - position, READ_CHUNK));
        if (chunk.length === 0) throw new Error(`spool of ${this.digest} ended early at ${position}`);
        position += chunk.length;
        yield chunk;
      } else if (this.failure) {
        // The fill logged why; each reader's client only sees its transfer end.
        throw new RegistryError("UNAVAILABLE", `fetching blob ${this.digest} failed: ${this.failure.message}`);
      } else {
        await this.progress.wait();
      }
    }
  }

  /** Readers may have everything once verified, and all but the last byte before. */
  private visible(): number {
    const received = this.spool.length;
    return this.verified ? received : Math.max(0, Math.min(received, this.size - 1));
  }

  private async run(body: Readable, sink: BlobSink | undefined): Promise<void> {
    // The store's reader is taken now, so the spool stays open for its copy.
    const reader = sink && this.reader(0, this.size);
    try {
      await this.receive(body);
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      this.progress.notify();
      this.endJoining();
      body.destroy();
      this.log.warn({ digest: this.digest, err: this.failure.message }, "mirror: fetching a blob from upstream failed; nothing cached");
    }
    // The store copies from the spool once the peer's transfer is over: on a machine of few
    // cores, copying (and syncing) alongside it would take the clients' pace down to the disk's.
    if (sink) await this.store(sink, reader);
  }

  /** Copies the verified bytes into the store; on any failure the store keeps nothing. */
  private async store(sink: BlobSink, reader: Readable | undefined): Promise<void> {
    try {
      if (!reader || this.failure) throw this.failure ?? new Error("spool closed before the store copy began");
      await pipeline(reader, sink.stream);
      await sink.commit(this.digest);
    } catch (err) {
      reader?.destroy();
      await sink.abort().catch(() => undefined);
      // Clients got their bytes from the spool; the store just does not keep a copy this time.
      if (!this.failure) this.log.warn({ digest: this.digest, err: String(err) }, "mirror: could not cache a blob (served it uncached)");
    }
  }

  /** Copies the peer's bytes to the spool, then verifies them. */
  private async receive(body: Readable): Promise<void> {
    const hash = newHash(digestAlgorithm(this.digest));
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (this.spool.length + chunk.length > this.size) {
        throw new UpstreamError(`upstream sent more than the ${this.size} bytes it announced for blob ${this.digest}`);
      }
      hash.update(chunk);
      const appended = this.spool.append(chunk);
      this.progress.notify();
      await appended;
    }
    if (this.spool.length !== this.size) {
      throw new UpstreamError(`upstream ended blob ${this.digest} after ${this.spool.length} of ${this.size} bytes`);
    }
    const actual = hashToDigest(digestAlgorithm(this.digest), hash);
    if (actual !== this.digest) throw new UpstreamError(`upstream sent bytes whose digest is ${actual} for blob ${this.digest}`);
    this.verified = true;
    this.progress.notify();
  }
}
