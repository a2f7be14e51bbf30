import { deleteIfPresent, unlessMissing, type StorageDriver } from "../storage/driver.js";
import { layout } from "./layout.js";
import { writeLink } from "./blobs.js";
import { parseDigest, type Digest } from "./digest.js";
import type { RepositoryName } from "./names.js";

/**
 * Which manifests name a given subject: maintained on push and delete, so the referrers API
 * answers without scanning every manifest of the repository.
 */
export class ReferrerIndex {
  constructor(
    private readonly driver: StorageDriver,
    readonly name: RepositoryName,
  ) {}

  add(subject: Digest, referrer: Digest): Promise<void> {
    return writeLink(this.driver, layout.referrerLink(this.name, subject, referrer), referrer);
  }

  async remove(subject: Digest, referrer: Digest): Promise<void> {
    await deleteIfPresent(this.driver, layout.referrerDir(this.name, subject, referrer));
  }

  async list(subject: Digest): Promise<Digest[]> {
    const root = layout.referrersDir(this.name, subject);
    const algorithms = (await unlessMissing(() => this.driver.list(root))) ?? [];
    const digests: Digest[] = [];
    for (const algorithmDir of algorithms) {
      const algorithm = algorithmDir.slice(algorithmDir.lastIndexOf("/") + 1);
      for (const entry of (await unlessMissing(() => this.driver.list(algorithmDir))) ?? []) {
        const parsed = parseDigest(`${algorithm}:${entry.slice(entry.lastIndexOf("/") + 1)}`);
        if (parsed.ok) digests.push(parsed.digest);
      }
    }
    return digests.sort();
  }
}
