import { rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Digest } from "../../src/registry/digest.js";
import { layout } from "../../src/registry/layout.js";
import type { RepositoryName, Tag } from "../../src/registry/names.js";
import { call } from "../helpers/http.js";
import { artifactFor, pullsWhole, pushImage, randomImage, type Image } from "../helpers/oci.js";
import { runCli } from "../helpers/process.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { createBucket, s3StorageYaml } from "../helpers/s3.js";
import { holdsBlobs } from "../helpers/store.js";
import { METRICS_ON_MAIN_PORT, sample } from "../helpers/metrics.js";
import { startReceiver } from "../helpers/notification-receiver.js";
import { until } from "../helpers/until.js";

const DAY = 24 * 3_600_000;

/** The rules under test: one of each kind, each over a repository of its own. */
const RULES = `
  retention:
    rules:
      - repositories: lain/app
        keep: {newestpushed: 2, always: [latest, "release-.*"]}
      - repositories: team/tagged
        keep: {tags: "stable-.*"}
      - repositories: team/recent
        keep: {pushedwithin: 24h}
      - repositories: team/pulled
        keep: {newestpulled: 1}
      - repositories: team/used
        keep: {pulledwithin: 1h}
      - repositories: team/untagged
        untagged: {olderthan: 1h}
      - repositories: team/signed
        keep: {tags: keep}
        orphanreferrers: true`;

/** `would remove <what> (...)` lines of a dry run, and `keep <tag> (<reason>)`, sorted. */
function lines(stdout: string, verb: string): string[] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith(`${verb} `))
    .map((l) => l.slice(verb.length + 1).replace(/ \(.*\)$/, ""))
    .sort();
}

describe("storage.retention: rules of each kind on a store with known push and pull times", () => {
  let work: string;
  let root: string;
  let config: string;
  let registry: TestRegistry;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const images = new Map<string, Image>();

  async function push(repo: string, tag: string, ageMs = 0, image = randomImage({ layers: 1, layerSize: 5_000 })): Promise<Image> {
    await pushImage(registry.url, repo, tag, image);
    images.set(`${repo}:${tag}`, image);
    if (ageMs > 0) {
      const when = new Date(Date.now() - ageMs);
      await utimes(join(root, layout.tagCurrentLink(repo as RepositoryName, tag as Tag)), when, when);
    }
    return image;
  }
  const pull = async (repo: string, tag: string) => {
    const image = images.get(`${repo}:${tag}`)!;
    expect((await call("GET", `${registry.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: image.manifest.mediaType } })).status).toBe(200);
  };

  beforeAll(async () => {
    work = await tempDir("lain-retention-");
    root = join(work, "store");
    const storage = `  filesystem: {rootdirectory: ${root}}${RULES}`;
    config = join(work, "config.yml");
    receiver = await startReceiver(0);
    const notifications = `notifications:\n  endpoints:\n    - name: sink\n      url: ${receiver.url}/events\n      timeout: 2s\n      threshold: 3\n      backoff: 1s`;
    await writeFile(config, `version: 0.1\nlog: {level: warn}\nstorage:\n${storage}\n  delete: {enabled: true}\nhttp: {secret: s}\n${notifications}\n`);
    registry = await startTestRegistry({ root, storageYaml: storage });
  });
  afterAll(async () => {
    await registry?.close();
    receiver?.server.close();
    await rm(work, { recursive: true, force: true });
  });

  it("the dry run lists exactly what would go and why each survivor stays; the run removes exactly that; GC frees the blobs", async () => {
    // lain/app: v1 (oldest) .. v6 (newest); latest and release-1 protected, whatever their age.
    for (let i = 1; i <= 6; i++) await push("lain/app", `v${i}`, (10 - i) * DAY);
    await push("lain/app", "latest", 30 * DAY, images.get("lain/app:v1"));
    await push("lain/app", "release-1", 40 * DAY);
    await push("team/tagged", "stable-1");
    await push("team/tagged", "dev-1");
    await push("team/recent", "old", 10 * DAY);
    await push("team/recent", "new");
    for (const tag of ["a", "b", "c"]) await push("team/pulled", tag);
    await push("team/used", "pulled");
    await push("team/used", "idle");
    await push("team/untagged", "tagged");
    const stale = randomImage({ layers: 1, layerSize: 5_000 });
    await pushImage(registry.url, "team/untagged", stale.manifest.digest, stale);
    const staleLink = join(root, layout.revisionLink("team/untagged" as RepositoryName, stale.manifest.digest as Digest));
    await utimes(staleLink, new Date(Date.now() - 2 * 3_600_000), new Date(Date.now() - 2 * 3_600_000));
    const fresh = randomImage({ layers: 1, layerSize: 5_000 });
    await pushImage(registry.url, "team/untagged", fresh.manifest.digest, fresh);
    const gone = await push("team/signed", "gone");
    const kept = await push("team/signed", "keep");
    const goneSignature = artifactFor(gone.manifest, "application/vnd.example.signature");
    const keptSignature = artifactFor(kept.manifest, "application/vnd.example.signature");
    for (const signature of [goneSignature, keptSignature]) await pushImage(registry.url, "team/signed", signature.manifest.digest, signature);
    await push("other/repo", "anything", 100 * DAY);
    // Pulls: c after b in team/pulled (a never), and team/used:pulled. HEADs are not pulls.
    await pull("team/pulled", "b");
    await new Promise((r) => setTimeout(r, 20));
    await pull("team/pulled", "c");
    expect((await call("HEAD", `${registry.url}/v2/team/pulled/manifests/a`)).status).toBe(200);
    await pull("team/used", "pulled");
    // Closing writes this instance's pull times.
    await registry.close();

    const dry = await runCli("retention", config, "--dry-run");
    expect(dry.code, dry.stderr).toBe(0);
    const expectedTags = ["lain/app:v1", "lain/app:v2", "lain/app:v3", "lain/app:v4", "team/tagged:dev-1", "team/recent:old", "team/pulled:a", "team/pulled:b", "team/used:idle", "team/signed:gone"].sort();
    const manifest = (key: string) => images.get(key)!.manifest.digest;
    const expectedManifests = [
      // v1's manifest stays: latest points at it.
      ...["lain/app:v2", "lain/app:v3", "lain/app:v4", "team/tagged:dev-1", "team/recent:old", "team/pulled:a", "team/pulled:b", "team/used:idle", "team/signed:gone"].map((k) => `${k.split(":")[0]}@${manifest(k)}`),
      `team/untagged@${stale.manifest.digest}`,
      `team/signed@${goneSignature.manifest.digest}`,
    ].sort();
    expect(lines(dry.stdout, "would remove")).toEqual([...expectedTags, ...expectedManifests].sort());
    expect(dry.stdout).toContain("keep lain/app:latest (rule 1: always (latest))");
    expect(dry.stdout).toContain("keep lain/app:release-1 (rule 1: always (release-.*))");
    expect(dry.stdout).toContain("keep lain/app:v6 (rule 1: among the newest 2 pushed)");
    expect(dry.stdout).toContain("keep team/pulled:c (rule 4: among the newest 1 pulled)");
    expect(dry.stdout).toContain("keep team/used:pulled (rule 5: pulled within 3600 s)");
    expect(dry.stdout).toContain("keep team/untagged:tagged (no rule governs its tags)");
    expect(dry.stdout).not.toContain("other/repo");

    const run = await runCli("retention", config);
    expect(run.code, run.stderr).toBe(0);
    expect(lines(run.stdout, "removed")).toEqual([...expectedTags, ...expectedManifests].sort());
    // Each removal went out as the delete event an API DELETE sends, before the command ended.
    const deleted = receiver.deliveries.flatMap((d) => d.events).filter((e) => e.action === "delete").map((e) => (e.target.tag ? `${String(e.target.repository)}:${String(e.target.tag)}` : `${String(e.target.repository)}@${String(e.target.digest)}`));
    expect(deleted.sort()).toEqual([...expectedTags, ...expectedManifests].sort());
    const again = await runCli("retention", config, "--dry-run");
    expect(lines(again.stdout, "would remove")).toEqual([]);

    const gc = await runCli("garbage-collect", config, "--delay", "0s");
    expect(gc.code, gc.stderr).toBe(0);
    const removedLayers = ["lain/app:v2", "team/tagged:dev-1", "team/used:idle"].map((k) => images.get(k)!.layers[0]!.digest);
    for (const layer of removedLayers) expect(await holdsBlobs(root, [layer])).toBe(false);
    const served = await startTestRegistry({ root });
    try {
      for (const key of ["lain/app:latest", "lain/app:v1", "lain/app:v6", "lain/app:release-1", "team/pulled:c", "team/signed:keep", "other/repo:anything"]) {
        const [repo, tag] = key.split(":") as [string, string];
        const image = key === "lain/app:v1" ? images.get("lain/app:latest")! : images.get(key)!;
        expect(await pullsWhole(served.url, repo, key === "lain/app:v1" ? image.manifest.digest : tag, image), key).toBe(true);
      }
      expect((await call("GET", `${served.url}/v2/team/signed/referrers/${kept.manifest.digest}`)).json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest)).toEqual([keptSignature.manifest.digest]);
      expect((await call("HEAD", `${served.url}/v2/team/untagged/manifests/${fresh.manifest.digest}`)).status).toBe(200);
    } finally {
      await served.close();
    }
  }, 120_000);
});

const s3 = inject("s3");

describe("pull times shared by every instance on one store", () => {
  for (const store of ["filesystem", "s3"] as const) {
    it.skipIf(store === "s3" && s3 === null)(`two instances on ${store}: each one's pulls count, the latest wins`, async () => {
      const work = await tempDir("lain-pulls-");
      const storageYaml = store === "filesystem" ? `  filesystem: {rootdirectory: ${join(work, "store")}}` : s3StorageYaml(s3!, await createBucket(s3!));
      const withRules = `${storageYaml}\n  retention:\n    rules:\n      - repositories: shared/app\n        keep: {newestpulled: 1}`;
      const config = join(work, "config.yml");
      await writeFile(config, `version: 0.1\nlog: {level: warn}\nstorage:\n${withRules}\nhttp: {secret: s}\n`);
      const [a, b] = [await startTestRegistry({ storageYaml: withRules }), await startTestRegistry({ storageYaml: withRules })];
      const first = randomImage({ layers: 1, layerSize: 1000 });
      const second = randomImage({ layers: 1, layerSize: 1000 });
      try {
        await pushImage(a.url, "shared/app", "first", first);
        await pushImage(a.url, "shared/app", "second", second);
        const get = (registry: TestRegistry, tag: string, image: Image) => call("GET", `${registry.url}/v2/shared/app/manifests/${tag}`, { headers: { accept: image.manifest.mediaType } });
        // first through a, then second through b: b's pull is the latest.
        expect((await get(a, "first", first)).status).toBe(200);
        await new Promise((r) => setTimeout(r, 20));
        expect((await get(b, "second", second)).status).toBe(200);
      } finally {
        await a.close();
        await b.close();
      }
      try {
        const dry = await runCli("retention", config, "--dry-run");
        expect(dry.stdout).toContain("keep shared/app:second (rule 1: among the newest 1 pulled)");
        expect(lines(dry.stdout, "would remove")).toEqual([`shared/app:first`, `shared/app@${first.manifest.digest}`]);
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
  }
});

describe("storage.retention inside the server", () => {
  it("runs every interval, removes what the rules do not keep, and sends the delete events an API DELETE would", async () => {
    const receiver = await startReceiver(0);
    const root = await tempDir("lain-retention-server-");
    const registry = await startTestRegistry({
      root,
      storageYaml: `  filesystem: {rootdirectory: ${root}}\n  retention:\n    enabled: true\n    interval: 1s\n    rules:\n      - repositories: lain/served\n        keep: {newestpushed: 1}`,
      extraYaml: `${METRICS_ON_MAIN_PORT}\nnotifications:\n  endpoints:\n    - name: sink\n      url: ${receiver.url}/events\n      timeout: 2s\n      threshold: 3\n      backoff: 1s`,
    });
    try {
      const old = randomImage({ layers: 1, layerSize: 1000 });
      await pushImage(registry.url, "lain/served", "old", old);
      const when = new Date(Date.now() - DAY);
      await utimes(join(root, layout.tagCurrentLink("lain/served" as RepositoryName, "old" as Tag)), when, when);
      const current = randomImage({ layers: 1, layerSize: 1000 });
      await pushImage(registry.url, "lain/served", "current", current);
      const removed = async (kind: string) => sample((await call("GET", `${registry.url}/metrics`)).text, "registry_retention_removed_total", { kind });
      await until(async () => (await removed("tag")) === 1 && (await removed("manifest")) === 1, "a retention run");
      expect((await call("GET", `${registry.url}/v2/lain/served/manifests/old`)).status).toBe(404);
      expect(await pullsWhole(registry.url, "lain/served", "current", current)).toBe(true);
      const deletes = () => receiver.deliveries.flatMap((d) => d.events).filter((e) => e.action === "delete");
      await until(() => deletes().length >= 2, "the delete events");
      expect(deletes().map((e) => e.target)).toEqual(expect.arrayContaining([
        { repository: "lain/served", tag: "old" },
        { repository: "lain/served", digest: old.manifest.digest },
      ]));
    } finally {
      await registry.close();
      receiver.server.close();
      await rm(root, { recursive: true, force: true });
    }
  }, 60_000);
});
