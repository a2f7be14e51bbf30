import { randomUUID } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Digest } from "../../src/registry/digest.js";
import type { IncomingBody } from "../../src/registry/uploads.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { layout } from "../../src/registry/layout.js";

/** The file of a blob's data under a filesystem store root. */
export function blobFile(root: string, digest: string): string {
  return join(root, layout.blobData(digest as Digest));
}

/** Digests of every sha256 blob under a filesystem store root, sorted. */
export async function storedBlobs(root: string): Promise<string[]> {
  const dir = join(root, layout.blobsRoot, "sha256");
  const prefixes = await readdir(dir).catch(() => [] as string[]);
  const all = await Promise.all(prefixes.map((p) => readdir(join(dir, p)).catch(() => [] as string[])));
  return all.flat().map((hex) => `sha256:${hex}`).sort();
}

/** Whether the store holds the data of every one of these blobs. */
export async function holdsBlobs(root: string, digests: string[]): Promise<boolean> {
  const present = await Promise.all(digests.map((d) => stat(blobFile(root, d)).then(() => true, () => false)));
  return present.every(Boolean);
}

/**
 * Waits until the store stamps a new write later than everything written before the call. A
 * collection reads ages off the store's clock and spares what was stamped in the same tick as
 * its start (a second on S3): a test that wants what it just wrote to count as older than the
 * delay waits for this first. At most five seconds.
 */
export async function afterStoreTick(driver: StorageDriver): Promise<void> {
  const probe = `${layout.root}/_test/clock-${randomUUID()}`;
  const stamp = async () => {
    await driver.putContent(probe, Buffer.from(""));
    return (await driver.stat(probe)).modTime.getTime();
  };
  const first = await stamp();
  for (let i = 0; i < 100 && (await stamp()) <= first; i++) await new Promise((r) => setTimeout(r, 50));
  await driver.delete(probe);
}

/** A stream of the test's own as an upload's body (no declared length). */
export function bodyOf(stream: Readable): IncomingBody {
  return { length: undefined, open: () => stream };
}

/** Upload sessions, and half-written small files, anywhere under a filesystem store root. */
export async function leftovers(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true });
  return entries.filter((e) => /_uploads\/[0-9a-f-]{36}$/.test(e) || e.includes(".tmp-"));
}
