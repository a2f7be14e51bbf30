import { Transform, type TransformCallback } from "node:stream";
import { Worker } from "node:worker_threads";
import type { Digest, DigestAlgorithm } from "./digest.js";

/**
 * Digests computed on a worker thread. A push's main thread then only receives and writes: on
 * two cores, SHA-256 on the main thread (0.17 s per 256 MiB here) was a third of a push's time,
 * in series with the socket's reads. Bytes reach the worker in slots that travel to it and back
 * by transfer, without a copy; a feed copies what passes into a slot (an ordinary memmove: a
 * shared buffer would cost V8's relaxed copy, several times slower on unaligned chunks, 15% of
 * a push) and takes a returned slot for the next bytes. Transferring the request's own chunks
 * instead (each owns its memory) saved that copy but cost more in thousands of transfers.
 *
 * One worker serves the process: it hashes 1.5 GB/s, more than a push's disk or network carries.
 */

/**
 * A message per slot costs nothing at this size. Three slots keep the thread busy while the feed
 * fills the next (with two, each waited on the other: a fifth slower); more only hold memory.
 */
const SLOT_BYTES = 512 * 1024;
const SLOTS = 3;
/** Slot sets kept for the next feeds (each is SLOTS × SLOT_BYTES of memory). */
const IDLE_RINGS = 2;

type ToWorker =
  | { op: "start"; hash: number; algorithm: DigestAlgorithm }
  | { op: "update"; hash: number; ring: number; slot: ArrayBuffer; length: number }
  | { op: "digest"; hash: number }
  | { op: "drop"; hash: number };

type FromWorker = { op: "hashed"; ring: number; slot: ArrayBuffer } | { op: "digest"; hash: number; hex: string };

/**
 * The worker's whole program, run from its source text (a worker started from a file would need
 * the built file beside this module, which tests run from source do not have): no closure, no
 * import, only builtins.
 */
function hashWorkerMain(): void {
  const { parentPort } = process.getBuiltinModule("node:worker_threads");
  const { createHash } = process.getBuiltinModule("node:crypto");
  const hashes = new Map<number, ReturnType<typeof createHash>>();
  parentPort!.on("message", (message: ToWorker) => {
    switch (message.op) {
      case "start":
        hashes.set(message.hash, createHash(message.algorithm));
        break;
      case "update":
        hashes.get(message.hash)?.update(new Uint8Array(message.slot, 0, message.length));
        parentPort!.postMessage({ op: "hashed", ring: message.ring, slot: message.slot } satisfies FromWorker, [message.slot]);
        break;
      case "digest": {
        const hash = hashes.get(message.hash);
        hashes.delete(message.hash);
        parentPort!.postMessage({ op: "digest", hash: message.hash, hex: hash ? hash.digest("hex") : "" } satisfies FromWorker);
        break;
      }
      case "drop":
        hashes.delete(message.hash);
        break;
    }
  });
}

/** One feed's slots: those at hand, and how many are with the thread. */
class Ring {
  readonly free: Buffer[] = Array.from({ length: SLOTS }, () => Buffer.from(new ArrayBuffer(SLOT_BYTES)));
  out = 0;
  /** Told when the thread hands back a slot; nothing once the ring is returned. */
  onHashed: (() => void) | undefined;

  constructor(readonly id: number) {}
}

/** The process's hashing worker, its rings, and what waits on it. */
class DigestThread {
  private worker: Worker | undefined;
  /** Counts workers started: a hash belongs to the one it was started on. */
  generation = 0;
  private nextId = 1;
  private readonly idle: Ring[] = [];
  /** Rings given out or with slots still at the thread, by id. */
  private readonly lent = new Map<number, Ring>();
  private readonly digests = new Map<number, { resolve: (hex: string) => void; reject: (err: Error) => void }>();
  private busy = 0;

  private post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.start().postMessage(message, transfer);
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(`(${hashWorkerMain.toString()})();`, { eval: true, name: "digests" });
    worker.on("message", (message: FromWorker) => this.receive(message));
    worker.on("error", (err) => this.fail(worker, err));
    worker.on("exit", (code) => this.fail(worker, new Error(`the digest thread exited (code ${code})`)));
    // Idle, it must not keep the process alive; while something waits on it, it must. After the
    // listeners: a "message" listener refs the worker's port again.
    worker.unref();
    this.worker = worker;
    this.generation++;
    this.busy = 0;
    return worker;
  }

  private hold(): void {
    if (this.busy++ === 0) this.worker?.ref();
  }

  /** Ends a hold() taken while worker `generation` ran (a dead worker's holds went with it). */
  private letGo(generation: number): void {
    if (generation === this.generation && --this.busy === 0) this.worker?.unref();
  }

  /** A dead worker fails what waits on it (its slots are lost with it); the next hash starts a new one. */
  private fail(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    this.idle.length = 0;
    const waiting = [...this.lent.values()];
    this.lent.clear();
    for (const ring of waiting) ring.onHashed?.();
    for (const { reject } of this.digests.values()) reject(err);
    this.digests.clear();
  }

  private receive(message: FromWorker): void {
    if (message.op === "hashed") {
      const ring = this.lent.get(message.ring);
      if (!ring) return;
      ring.out--;
      ring.free.push(Buffer.from(message.slot));
      if (ring.onHashed) ring.onHashed();
      else this.settle(ring);
      return;
    }
    const waiting = this.digests.get(message.hash);
    this.digests.delete(message.hash);
    waiting?.resolve(message.hex);
  }

  alive(generation: number): boolean {
    return this.worker !== undefined && this.generation === generation;
  }

  /** A running hash on the worker. */
  open(algorithm: DigestAlgorithm): number {
    const hash = this.nextId++;
    this.post({ op: "start", hash, algorithm });
    return hash;
  }

  drop(hash: number, generation: number): void {
    if (this.alive(generation)) this.post({ op: "drop", hash });
  }

  /** The digest of everything fed to `hash`, which ends it. */
  digest(hash: number, generation: number): Promise<string> {
    if (!this.alive(generation)) return Promise.reject(new Error("the digest thread that held this hash is gone"));
    this.hold();
    return new Promise<string>((resolve, reject) => {
      this.digests.set(hash, { resolve, reject });
      this.post({ op: "digest", hash });
    }).finally(() => this.letGo(generation));
  }

  /** Hands a filled slot to the thread (it comes back to the ring's free slots once hashed). */
  update(hash: number, ring: Ring, slot: Buffer, length: number): void {
    ring.out++;
    this.post({ op: "update", hash, ring: ring.id, slot: slot.buffer as ArrayBuffer, length }, [slot.buffer as ArrayBuffer]);
  }

  /** A ring for one feed; `onHashed` hears of every slot the thread hands back. */
  takeRing(onHashed: () => void): Ring {
    const ring = this.idle.pop() ?? new Ring(this.nextId++);
    ring.onHashed = onHashed;
    this.lent.set(ring.id, ring);
    this.hold();
    return ring;
  }

  /** Takes a ring back; it is kept for another feed once the thread has returned its slots. */
  giveRing(ring: Ring): void {
    ring.onHashed = undefined;
    if (this.lent.has(ring.id)) this.settle(ring);
  }

  private settle(ring: Ring): void {
    if (ring.out > 0) return;
    this.lent.delete(ring.id);
    this.letGo(this.generation);
    if (this.idle.length < IDLE_RINGS) this.idle.push(ring);
  }
}

const thread = new DigestThread();

/**
 * A running digest of bytes fed to it, computed on the digest thread. Feeds may follow one
 * another (the PATCHes of a chunked upload), never run at once. Should the thread die, the
 * feeds go on passing bytes unhashed and digest() fails: the caller hashes the stored bytes.
 */
export class ThreadedHash {
  private readonly id: number;
  private readonly generation: number;
  private ended = false;

  constructor(readonly algorithm: DigestAlgorithm) {
    this.id = thread.open(algorithm);
    this.generation = thread.generation;
  }

  /** A pass-through stream that hashes what crosses it; it waits while the thread is behind. */
  feed(): Transform {
    return new HashFeed(this.id, this.generation);
  }

  /** The digest of all that was fed; the hash ends. */
  async digest(): Promise<Digest> {
    this.ended = true;
    return `${this.algorithm}:${await thread.digest(this.id, this.generation)}` as Digest;
  }

  /** Ends the hash without a digest. */
  dispose(): void {
    if (this.ended) return;
    this.ended = true;
    thread.drop(this.id, this.generation);
  }
}

/** Copies what passes into slots and hands each full one to the thread. */
class HashFeed extends Transform {
  private ring: Ring | undefined;
  private slot: Buffer | undefined;
  private filled = 0;
  private waiting: (() => void) | undefined;

  constructor(
    private readonly hash: number,
    private readonly generation: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!thread.alive(this.generation)) return callback(null, chunk);
    this.ring ??= thread.takeRing(() => {
      const resume = this.waiting;
      this.waiting = undefined;
      resume?.();
    });
    this.copy(chunk, 0, callback);
  }

  /** Copies chunk[from..] into slots, waiting for one while all are with the thread. */
  private copy(chunk: Buffer, from: number, callback: TransformCallback): void {
    const ring = this.ring!;
    let offset = from;
    while (offset < chunk.length) {
      if (!thread.alive(this.generation)) return callback(null, chunk);
      if (!this.slot) {
        this.slot = ring.free.pop();
        this.filled = 0;
        if (!this.slot) {
          this.waiting = () => this.copy(chunk, offset, callback);
          return;
        }
      }
      const copied = chunk.copy(this.slot, this.filled, offset);
      this.filled += copied;
      offset += copied;
      if (this.filled === SLOT_BYTES) this.handOver();
    }
    callback(null, chunk);
  }

  private handOver(): void {
    thread.update(this.hash, this.ring!, this.slot!, this.filled);
    this.slot = undefined;
  }

  override _flush(callback: TransformCallback): void {
    if (this.slot && this.filled > 0 && thread.alive(this.generation)) this.handOver();
    this.release();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.release();
    callback(err);
  }

  private release(): void {
    const ring = this.ring;
    if (!ring) return;
    this.ring = undefined;
    this.waiting = undefined;
    // A slot being filled never went to the thread: it is free again.
    if (this.slot) ring.free.push(this.slot);
    this.slot = undefined;
    thread.giveRing(ring);
  }
}
