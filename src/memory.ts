import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * Bytes received from a socket (a pushed blob's body, a mirror's upstream response, a store's
 * read) arrive in fresh 64 KiB buffers that are dead a few milliseconds later. V8 frees a
 * buffer's memory only when it collects the object that holds it: when the young generation
 * fills, or once 64 MiB of such "external" memory has piled up since the last collection. A
 * streaming path allocates so few objects besides the buffers that the second comes first, so
 * at full speed up to ~64 MiB of dead buffers sit in the resident set, and malloc keeps the heap
 * it grew for them. Measured on Node 24: four concurrent 256 MiB pushes peaked at ~195 MiB RSS, of
 * which ~50 MiB were dead buffers (process.memoryUsage().arrayBuffers) and ~40 MiB malloc heap
 * retained after them.
 *
 * The pacer watches V8's external-memory figure and, each time it has grown by STEP_BYTES, runs a
 * young-generation collection (tens of microseconds: almost nothing in it survives). The
 * buffers die young, so that is where they are freed.
 */
export const BUFFER_PACING = { stepBytes: 16 * 1024 * 1024, intervalMs: 10 };

type Collect = (options: { type: "minor"; execution: "sync" }) => void;

/** V8's collector, taken from a fresh context so that no `gc` appears on this one's global object. */
function youngCollector(): (() => void) | undefined {
  setFlagsFromString("--expose-gc");
  const gc: unknown = runInNewContext("gc");
  return typeof gc === "function" ? () => (gc as Collect)({ type: "minor", execution: "sync" }) : undefined;
}

export interface BufferPacer {
  /** Young-generation collections run so far. */
  readonly collections: number;
  stop(): void;
}

/** Starts the pacer of a long-running process (serve); it does not keep the process alive. */
export function paceBufferCollection(timing = BUFFER_PACING): BufferPacer {
  const collect = youngCollector();
  let floor = getHeapStatistics().external_memory;
  let collections = 0;
  const timer = setInterval(() => {
    const external = getHeapStatistics().external_memory;
    // The lowest figure since the last collection: the sweeper frees behind a collection, not at once.
    floor = Math.min(floor, external);
    if (!collect || external - floor < timing.stepBytes) return;
    collect();
    collections++;
    floor = getHeapStatistics().external_memory;
  }, timing.intervalMs);
  timer.unref();
  return {
    get collections() {
      return collections;
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * For a batch that holds what it has marked and discards much more per object it reads (a
 * collection: each S3 response is parsed into objects dead a moment later). When allocation is
 * fast, V8 lets the old generation grow to several times what is live before it collects again:
 * measured on RGW at 30,000 blobs, 21.6 MiB live in a heap of 92-103 MiB, so the peak grew by
 * 0.9-2.3 KiB per blob. Growing by a quarter keeps the heap near what is live (0.0-0.4 KiB per
 * blob) for a few percent more time. Set before the batch allocates: V8 reads the flag at each
 * collection.
 */
export function keepHeapNearLive(): void {
  setFlagsFromString("--heap-growing-percent=25");
}
