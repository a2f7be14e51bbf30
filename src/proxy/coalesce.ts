/**
 * One task per key at a time: callers asking for a key while its task runs join it instead of
 * starting another. The key stays taken until `until` (default: the task itself) settles, so a
 * task whose result outlives its promise (a blob still filling) keeps gathering joiners.
 */
export class Coalescer<T> {
  private readonly running = new Map<string, Promise<T>>();

  /** Whether a task for the key runs now (a call to run would join it). */
  has(key: string): boolean {
    return this.running.has(key);
  }

  run(key: string, start: () => Promise<T>, until: (value: T) => Promise<unknown> = () => Promise.resolve()): Promise<T> {
    const joined = this.running.get(key);
    if (joined) return joined;
    const task = start();
    this.running.set(key, task);
    const release = () => {
      if (this.running.get(key) === task) this.running.delete(key);
    };
    task.then(until).then(release, release);
    return task;
  }
}
