import type { Clock } from "../../src/gc/clock.js";

/** Lets every promise chain that is ready run (store calls of the in-memory driver included). */
export const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A clock that moves only when the test says, waking sleepers in order. */
export class FakeClock implements Clock {
  private time = 0;
  private sleepers: Array<{ at: number; wake: () => void }> = [];

  now(): number {
    return this.time;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((wake) => this.sleepers.push({ at: this.time + ms, wake }));
  }

  /** Moves time forward by `ms`, running whatever falls due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      await settle();
      const due = this.sleepers.filter((s) => s.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.time = Math.max(this.time, due.at);
      const woken = this.sleepers.filter((s) => s.at <= this.time);
      this.sleepers = this.sleepers.filter((s) => s.at > this.time);
      for (const s of woken) s.wake();
    }
    this.time = end;
    await settle();
  }

  /** Moves time to the earliest sleeper and wakes it (and any due with it); false when nobody sleeps. */
  wakeNext(): boolean {
    const due = this.sleepers.reduce<number | undefined>((at, s) => (at === undefined || s.at < at ? s.at : at), undefined);
    if (due === undefined) return false;
    this.time = Math.max(this.time, due);
    const woken = this.sleepers.filter((s) => s.at <= this.time);
    this.sleepers = this.sleepers.filter((s) => s.at > this.time);
    for (const s of woken) s.wake();
    return true;
  }
}
