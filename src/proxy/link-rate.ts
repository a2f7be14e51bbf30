/** A fill shorter than this says more about latency than about the link. */
const MIN_SAMPLE_BYTES = 2 * 1024 * 1024;
/** The estimate is the best of this many latest fills. */
const SAMPLES = 8;
/** One fill may have shared its link or come from a slow source: a rate is told once this many were timed. */
const MIN_SAMPLES = 3;

/**
 * How fast this mirror receives a blob, learnt from its own fills: the best rate of its latest
 * ones, once there are three. A fill runs at the rate of its slowest link, the source's or this mirror's, so the best of
 * several is near this mirror's own; the fleet compares them to keep a slow mirror from being a
 * parent of fast ones (proxy/relay.ts).
 */
export class LinkRate {
  private readonly samples: number[] = [];

  /** A fill of `bytes` that took `ms`, from its first byte to its verified end; the estimate after it. */
  record(bytes: number, ms: number): number | undefined {
    if (bytes >= MIN_SAMPLE_BYTES && ms > 0) {
      this.samples.push(Math.round((bytes * 1000) / ms));
      if (this.samples.length > SAMPLES) this.samples.shift();
    }
    return this.estimate();
  }

  /** Bytes per second; undefined until enough fills large enough have been timed. */
  estimate(): number | undefined {
    return this.samples.length >= MIN_SAMPLES ? Math.max(...this.samples) : undefined;
  }
}
