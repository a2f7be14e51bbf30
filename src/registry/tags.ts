import { deleteIfPresent, exists, unlessMissing, type StorageDriver } from "../storage/driver.js";
import { layout } from "./layout.js";
import { readLink, writeLink } from "./blobs.js";
import type { Digest } from "./digest.js";
import { isTag, type RepositoryName, type Tag } from "./names.js";

/** A repository's tags: `_manifests/tags/<tag>/current/link` plus distribution's index of past targets. */
export class TagStore {
  constructor(
    private readonly driver: StorageDriver,
    readonly name: RepositoryName,
  ) {}

  resolve(tag: Tag): Promise<Digest | undefined> {
    return readLink(this.driver, layout.tagCurrentLink(this.name, tag));
  }

  async tag(tag: Tag, digest: Digest): Promise<void> {
    await writeLink(this.driver, layout.tagIndexLink(this.name, tag, digest), digest);
    try {
      await writeLink(this.driver, layout.tagCurrentLink(this.name, tag), digest);
    } catch (err) {
      // A new tag the store failed to point anywhere would be listed and resolve to nothing.
      if (!(await exists(this.driver, layout.tagCurrentLink(this.name, tag)).catch(() => true))) {
        await deleteIfPresent(this.driver, layout.tagDir(this.name, tag)).catch(() => undefined);
      }
      throw err;
    }
  }

  async untag(tag: Tag): Promise<boolean> {
    return deleteIfPresent(this.driver, layout.tagDir(this.name, tag));
  }

  /** All tags, sorted; undefined when the repository has no tag directory at all. */
  async list(): Promise<Tag[] | undefined> {
    const paths = await unlessMissing(() => this.driver.list(layout.tagsDir(this.name)));
    if (!paths) return undefined;
    const tags = paths.map((path) => path.slice(path.lastIndexOf("/") + 1)).filter(isTag);
    return tags.sort();
  }

  /** The tags currently pointing at a manifest. */
  async lookup(digest: Digest): Promise<Tag[]> {
    const tags = (await this.list()) ?? [];
    const targets = await Promise.all(tags.map((tag) => this.resolve(tag)));
    return tags.filter((_, i) => targets[i] === digest);
  }
}
