import { createHash, randomUUID } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Digest } from "../../src/registry/digest.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
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

const digestOf = (content: Buffer) => `sha256:${createHash("sha256").update(content).digest("hex")}` as Digest;

/** Writes an image the way a push leaves it: blobs first, then the manifest, then the links. */
export async function writeImage(driver: StorageDriver, name: RepositoryName, tag: Tag, seed: string): Promise<Digest> {
  const layer = Buffer.from(`layer of ${seed}`);
  const config = Buffer.from(`{"config of":"${seed}"}`);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: digestOf(layer), size: layer.length }],
    }),
  );
  for (const blob of [layer, config, manifest]) await driver.putContent(layout.blobData(digestOf(blob)), blob);
  for (const blob of [layer, config]) await driver.putContent(layout.layerLink(name, digestOf(blob)), Buffer.from(digestOf(blob)));
  await driver.putContent(layout.revisionLink(name, digestOf(manifest)), Buffer.from(digestOf(manifest)));
  await driver.putContent(layout.tagCurrentLink(name, tag), Buffer.from(digestOf(manifest)));
  return digestOf(manifest);
}
