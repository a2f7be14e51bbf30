import { describe, expect, it } from "vitest";
import { Coalescer } from "../../src/proxy/coalesce.js";

describe("Coalescer", () => {
  it("runs one task per key and hands every caller its result", async () => {
    const coalescer = new Coalescer<number>();
    let started = 0;
    const task = () => new Promise<number>((resolve) => setTimeout(() => resolve(++started), 10));
    const results = await Promise.all([coalescer.run("k", task), coalescer.run("k", task), coalescer.run("other", task)]);
    expect(results.sort()).toEqual([1, 1, 2].sort());
    expect(started).toBe(2);
  });

  it("keeps the key taken until `until` settles, then starts afresh", async () => {
    const coalescer = new Coalescer<string>();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    expect(await coalescer.run("k", async () => "first", () => held)).toBe("first");
    expect(await coalescer.run("k", async () => "second")).toBe("first");
    release();
    await held;
    await new Promise((r) => setImmediate(r));
    expect(await coalescer.run("k", async () => "third")).toBe("third");
  });

  it("frees the key after a failure, so the next caller retries", async () => {
    const coalescer = new Coalescer<string>();
    await expect(coalescer.run("k", async () => Promise.reject(new Error("peer down")))).rejects.toThrow("peer down");
    await new Promise((r) => setImmediate(r));
    expect(await coalescer.run("k", async () => "ok")).toBe("ok");
  });
});
