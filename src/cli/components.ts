/**
 * One part of a running registry. serve lists them once: they start in that order, and stop in
 * the reverse order, so that nothing stops before what depends on it.
 */
export interface Component {
  readonly name: string;
  start(): Promise<void> | void;
  /** `graceMs`: how long requests in flight may take to finish (what listens uses it). */
  stop(graceMs: number): Promise<void> | void;
}

/** A part that runs from its construction on (a watch, the store): only its stop is in the list. */
export function running(name: string, stop: Component["stop"]): Component {
  return { name, start: () => undefined, stop };
}

/** The twin of a feature that is not configured: it starts and stops nothing. */
export function absent(name: string): Component {
  return running(name, () => undefined);
}

/** Something with a start and a stop of its own (a watch, a loop). */
export function loop(name: string, part: { start(): void; stop(): void }): Component {
  return { name, start: () => part.start(), stop: () => part.stop() };
}

/** A maintenance task on a timer: `schedule` starts it and answers its stop. */
export function scheduled(name: string, schedule: () => () => void): Component {
  let cancel: (() => void) | undefined;
  return { name, start: () => void (cancel = schedule()), stop: () => cancel?.() };
}

/**
 * Starts the components in order. A start that fails stops those already started, in reverse,
 * and throws: nothing of a refused start keeps running. Answers the stop of them all (once).
 */
export async function startInOrder(components: readonly Component[]): Promise<(graceMs: number) => Promise<void>> {
  const started: Component[] = [];
  const stop = async (graceMs: number) => {
    for (const component of started.splice(0).reverse()) await component.stop(graceMs);
  };
  try {
    for (const component of components) {
      await component.start();
      started.push(component);
    }
  } catch (err) {
    await stop(0);
    throw err;
  }
  return stop;
}
