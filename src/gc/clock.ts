/** The collection protocol's time: one clock for the fence, the guard and the collector, so tests can run them on fake time. */
export interface Clock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Resolves after `ms`; an `idle` wait does not keep the process alive. */
  sleep(ms: number, idle?: boolean): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, idle = false) =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      if (idle) timer.unref();
    }),
};
