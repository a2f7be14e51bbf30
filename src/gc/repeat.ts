/**
 * Runs a maintenance task now (or after the first interval) and then every interval, skipping
 * runs while `paused`; a run never overlaps the previous one. Returns the function that stops it.
 */
export function repeat(intervalMs: number, task: () => Promise<void>, options: { paused: () => boolean; immediately: boolean }): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => void run(), intervalMs);
    timer.unref();
  };
  const run = async () => {
    if (!options.paused()) await task();
    schedule();
  };
  if (options.immediately) void run();
  else schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
