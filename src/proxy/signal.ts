/** Something changed: whoever waits wakes up and looks again. */
export class Signal {
  private promise!: Promise<void>;
  private resolve!: () => void;

  constructor() {
    this.arm();
  }

  wait(): Promise<void> {
    return this.promise;
  }

  notify(): void {
    const resolve = this.resolve;
    this.arm();
    resolve();
  }

  private arm(): void {
    this.promise = new Promise((resolve) => (this.resolve = resolve));
  }
}
