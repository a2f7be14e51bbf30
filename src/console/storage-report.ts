import { linksBelow } from "../gc/collect.js";
import { forEachLimit } from "../gc/limit.js";
import { listRepositories } from "../registry/catalog.js";
import type { Digest } from "../registry/digest.js";
import { unlessMissing, type StorageDriver } from "../storage/driver.js";
import { layout } from "../registry/layout.js";

export interface StorageReport {
  /** Bytes of every blob some repository links: layers, configs, manifests (each blob once). */
  totalBytes: number;
  blobs: number;
  repositories: number;
  /** The largest repositories by the bytes of what they link (shared blobs count in each); none that holds nothing. */
  largest: Array<{ name: string; bytes: number; blobs: number }>;
}

const CONCURRENCY = 16;

/** Walks every repository's blob links and sizes them: what the console's storage view shows. */
export async function storageReport(driver: StorageDriver, top: number, progress: (repositories: number) => void): Promise<StorageReport> {
  const sizes = new Map<Digest, Promise<number>>();
  const sizeOf = (digest: Digest) => {
    let size = sizes.get(digest);
    if (!size) {
      size = unlessMissing(() => driver.stat(layout.blobData(digest))).then((info) => info?.size ?? 0);
      sizes.set(digest, size);
    }
    return size;
  };
  const repositories: StorageReport["largest"] = [];
  const { repositories: names } = await listRepositories(driver, Number.MAX_SAFE_INTEGER);
  await forEachLimit(names, CONCURRENCY, async (name) => {
    // Layers and configs are linked under _layers, manifests under _manifests/revisions.
    const linked = await Promise.all([linksBelow(driver, layout.layersDir(name)), linksBelow(driver, layout.revisionsDir(name))]);
    const digests = [...new Set(linked.flat().map((l) => l.digest))];
    const bytes = (await Promise.all(digests.map(sizeOf))).reduce((a, b) => a + b, 0);
    repositories.push({ name, bytes, blobs: digests.length });
    progress(repositories.length);
  });
  const unique = await Promise.all(sizes.values());
  repositories.sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
  return {
    totalBytes: unique.reduce((a, b) => a + b, 0),
    blobs: unique.filter((size) => size > 0).length,
    repositories: repositories.length,
    largest: repositories.filter((r) => r.bytes > 0).slice(0, top),
  };
}
