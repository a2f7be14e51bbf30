import { describe, expect, it } from "vitest";
import { WritebackJournal, type WriteEntry } from "../../src/proxy/writeback-journal.js";
import type { Digest } from "../../src/registry/digest.js";
import { layout } from "../../src/registry/layout.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, "0")}` as Digest;
const name = "lain/app" as RepositoryName;
const at = "2026-12-07T08:00:00.000Z";

describe("a standby's write-back journal", () => {
  it("gives its entries back in push order, also many within one millisecond, and another instance reads them the same", async () => {
    const driver = new InMemoryDriver();
    const journal = new WritebackJournal(driver);
    const written: WriteEntry[] = [];
    for (let i = 0; i < 50; i++) {
      const entry: WriteEntry =
        i % 3 === 0
          ? { kind: "manifest", name, digest: digest(i), mediaType: "application/vnd.oci.image.manifest.v1+json", tag: `v${i}` as Tag, base: i === 0 ? null : digest(i - 3), at }
          : i % 3 === 1
            ? { kind: "untag", name, tag: `v${i}` as Tag, digest: digest(i), at }
            : { kind: "manifest", name, digest: digest(i), mediaType: "application/vnd.oci.image.index.v1+json", at };
      await journal.append(entry);
      written.push(entry);
    }
    const read = await new WritebackJournal(driver).entries();
    expect(read.unreadable).toEqual([]);
    expect(read.entries.map((j) => j.entry)).toEqual(written);
    const keys = read.entries.map((j) => j.key);
    expect([...keys].sort()).toEqual(keys);
  });

  it("leaves an entry it cannot read in place and reports it; a done entry is gone", async () => {
    const driver = new InMemoryDriver();
    const journal = new WritebackJournal(driver);
    await journal.append({ kind: "delete", name, digest: digest(1), at });
    await driver.putContent(`${layout.root}/_writeback/journal/000000000000001-000000-ffffffff`, Buffer.from("{not json"));
    await driver.putContent(`${layout.root}/_writeback/journal/000000000000002-000000-ffffffff`, Buffer.from(JSON.stringify({ v: 1, kind: "manifest", name: "../escape", digest: digest(2), mediaType: "x", at })));
    const { entries, unreadable } = await journal.entries();
    expect(entries.map((j) => j.entry.kind)).toEqual(["delete"]);
    expect(unreadable).toEqual(["000000000000001-000000-ffffffff", "000000000000002-000000-ffffffff"]);
    await journal.done(entries[0]!.key);
    expect((await journal.entries()).entries).toEqual([]);
  });

  it("keeps what the replay decided against, oldest first", async () => {
    const journal = new WritebackJournal(new InMemoryDriver());
    expect(await journal.conflicts()).toEqual([]);
    const entry: WriteEntry = { kind: "manifest", name, digest: digest(7), mediaType: "m", tag: "v1" as Tag, base: null, at };
    await journal.recordConflict({ key: "2", entry, upstream: digest(8), reason: "moved", result: "conflict", at });
    await journal.recordConflict({ key: "1", entry, upstream: null, reason: "refused", result: "dropped", at });
    expect((await journal.conflicts()).map((c) => [c.key, c.result])).toEqual([["1", "dropped"], ["2", "conflict"]]);
  });
});
