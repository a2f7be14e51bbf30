import { createHash, randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { PassThrough, type Readable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BlobFill } from "../../src/proxy/blob-fill.js";
import { Spool } from "../../src/proxy/spool.js";
import type { Digest } from "../../src/registry/digest.js";
import { tempDir } from "../helpers/registry.js";

const MiB = 1024 * 1024;
const silent = pino({ level: "silent" });

async function collect(stream: Readable): Promise<{ bytes: Buffer; error?: Error }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { bytes: Buffer.concat(chunks) };
  } catch (err) {
    return { bytes: Buffer.concat(chunks), error: err as Error };
  }
}

function digestOf(content: Buffer): Digest {
  return `sha256:${createHash("sha256").update(content).digest("hex")}` as Digest;
}

describe("BlobFill (one upstream fetch, many readers)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir("lain-fill-");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A peer body the test feeds by hand, 64 KiB at a time. */
  async function fillOf(content: Buffer, size = content.length, digest = digestOf(content)) {
    const body = new PassThrough();
    const fill = new BlobFill({ digest, size, body }, await Spool.create(dir), undefined, silent);
    const feed = async (from: number, to: number) => {
      for (let at = from; at < to; at += 64 * 1024) {
        if (!body.write(content.subarray(at, Math.min(to, at + 64 * 1024)))) await new Promise((r) => body.once("drain", r));
      }
      await new Promise((r) => setImmediate(r));
    };
    return { fill, body, feed };
  }

  it("gives a late joiner the bytes that arrived before it (from the file, past the memory tail) and the rest as they come", async () => {
    const content = randomBytes(24 * MiB);
    const { fill, body, feed } = await fillOf(content);
    const early = collect(fill.reader(0, content.length)!);
    await feed(0, 16 * MiB);
    const late = collect(fill.reader(0, content.length)!);
    const ranged = collect(fill.reader(MiB, 2 * MiB)!);
    await feed(16 * MiB, content.length);
    body.end();
    await fill.done;
    for (const result of [await early, await late]) {
      expect(result.error).toBeUndefined();
      expect(result.bytes.equals(content)).toBe(true);
    }
    expect((await ranged).bytes.equals(content.subarray(MiB, 2 * MiB))).toBe(true);
    expect(fill.error).toBeUndefined();
  });

  it("holds the last byte back until the digest is checked: wrong bytes end in an error, one byte short", async () => {
    const content = randomBytes(MiB);
    const { fill, body, feed } = await fillOf(content, content.length, digestOf(randomBytes(16)));
    const reader = collect(fill.reader(0, content.length)!);
    await feed(0, content.length);
    body.end();
    const result = await reader;
    expect(result.error?.message).toMatch(/digest is sha256:/);
    expect(result.bytes.length).toBe(content.length - 1);
  });

  it("fails readers when the peer ends early or sends more than it announced", async () => {
    const content = randomBytes(MiB);
    const short = await fillOf(content, content.length + 10);
    const shortReader = collect(short.fill.reader(0, content.length + 10)!);
    await short.feed(0, content.length);
    short.body.end();
    expect((await shortReader).error?.message).toMatch(/after 1048576 of 1048586 bytes/);

    const long = await fillOf(content, content.length - 10, digestOf(content.subarray(0, content.length - 10)));
    const longReader = collect(long.fill.reader(0, content.length - 10)!);
    await long.feed(0, content.length);
    long.body.end();
    expect((await longReader).error?.message).toMatch(/more than the/);
  });

  it("refuses new readers once the fill is over and its spool closed", async () => {
    const content = randomBytes(1000);
    const { fill, body, feed } = await fillOf(content);
    await feed(0, content.length);
    body.end();
    await fill.done;
    expect(fill.reader(0, content.length)).toBeUndefined();
  });
});
