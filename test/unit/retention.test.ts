import { describe, expect, it } from "vitest";
import type { RetentionRule } from "../../src/config/config.js";
import { applyRetention } from "../../src/gc/retention.js";
import { layout } from "../../src/registry/layout.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
import { Registry } from "../../src/registry/registry.js";
import { PullTimes } from "../../src/registry/pull-times.js";
import type { Digest } from "../../src/registry/digest.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { writeImage } from "../helpers/store.js";

const app = "lain/app" as RepositoryName;
const newest: RetentionRule = {
  repositories: "lain/.*",
  keep: { always: [], tags: undefined, newestPushed: 1, newestPulled: undefined, pushedWithinMs: undefined, pulledWithinMs: undefined },
  untaggedOlderThanMs: undefined,
  orphanReferrers: false,
};

describe("retention beside pushes", () => {
  it("never removes a tag pushed again while the run goes on", async () => {
    const store = new InMemoryDriver();
    const first = await writeImage(store, app, "old" as Tag, "first");
    await new Promise((r) => setTimeout(r, 5));
    await writeImage(store, app, "new" as Tag, "second");
    let moved: string | undefined;
    let looks = 0;
    // The run's second look at the tag (right before removing it) comes after a push moved it.
    const driver = new Proxy(store, {
      get(target, key, receiver) {
        if (key !== "stat") return Reflect.get(target, key, receiver) as unknown;
        return async (path: string) => {
          if (path === layout.tagCurrentLink(app, "old" as Tag) && ++looks === 2) moved = await writeImage(target, app, "old" as Tag, "pushed during the run");
          return target.stat(path);
        };
      },
    });
    const registry = new Registry(driver);
    try {
      const report = await applyRetention(registry, [newest]);
      expect(report.plans[0]?.tags.find((t) => t.tag === "old")).toMatchObject({ kept: false, digest: first });
      expect(moved).toBeDefined();
      expect(report.skipped).toEqual(["lain/app:old"]);
      expect(report.removedTags).toEqual([]);
      expect(await registry.repository(app).tags.resolve("old" as Tag)).toBe(moved);
      // The manifest the tag left is untagged now, and goes as planned.
      expect(report.removedManifests).toEqual([`lain/app@${first}`]);
    } finally {
      await registry.close();
    }
  });
});

describe("pull times", () => {
  it("keep a flush's pulls when the store fails it, and write them at the next", async () => {
    const store = new InMemoryDriver();
    let failing = true;
    const driver = new Proxy(store, {
      get(target, key, receiver) {
        if (key === "putContent" && failing) return () => Promise.reject(new Error("the store is down"));
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const pulls = new PullTimes(driver, "instance-a");
    const a = `sha256:${"a".repeat(64)}` as Digest;
    const b = `sha256:${"b".repeat(64)}` as Digest;
    pulls.record(app, a, 1000);
    pulls.record("lain/other" as RepositoryName, b, 2000);
    await expect(pulls.flush()).rejects.toThrow("the store is down");
    failing = false;
    pulls.record(app, a, 3000);
    await pulls.flush();
    expect([...(await PullTimes.read(store, app))]).toEqual([[a, 3000]]);
    expect([...(await PullTimes.read(store, "lain/other" as RepositoryName))]).toEqual([[b, 2000]]);
    // A later flush merges into what the instance wrote before.
    pulls.record(app, b, 4000);
    await pulls.flush();
    expect(new Map(await PullTimes.read(store, app))).toEqual(new Map([[a, 3000], [b, 4000]]));
  });
});
