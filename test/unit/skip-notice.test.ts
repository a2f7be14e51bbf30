import { mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { skipNotice } from "../helpers/skip-notice.js";

describe("what npm test says first on a machine without the integration suites' tools", () => {
  const saved = { PATH: process.env.PATH, REQUIRE_INTEGRATION: process.env.REQUIRE_INTEGRATION };
  let bare: string;

  beforeAll(async () => {
    // A PATH with a shell and nothing else: every system tool is missing.
    bare = await mkdtemp(join(tmpdir(), "lain-bare-path-"));
    await symlink("/bin/sh", join(bare, "sh"));
  });
  afterAll(async () => {
    process.env.PATH = saved.PATH;
    if (saved.REQUIRE_INTEGRATION === undefined) delete process.env.REQUIRE_INTEGRATION;
    else process.env.REQUIRE_INTEGRATION = saved.REQUIRE_INTEGRATION;
    await rm(bare, { recursive: true, force: true });
  });

  it("names each suite that will skip, for lack of what, and the one command that installs it", async () => {
    process.env.PATH = bare;
    delete process.env.REQUIRE_INTEGRATION;
    const notice = await skipNotice();
    expect(notice).toContain("test/e2e/fleet.test.ts (needs skopeo, docker-registry, etcd, containerd, ctr)");
    expect(notice).toContain("test/e2e/s3.test.ts (needs skopeo, docker-registry, Ceph's radosgw)");
    expect(notice).toMatch(/sudo apt-get install -y --no-install-recommends .*\bdocker-registry\b.*\betcd-server\b.*\bskopeo\b/);
    expect(notice).not.toContain("test/unit/");
  });

  it("says nothing under REQUIRE_INTEGRATION=1, where a missing tool fails the run instead", async () => {
    process.env.PATH = bare;
    process.env.REQUIRE_INTEGRATION = "1";
    expect(await skipNotice()).toBeUndefined();
  });
});
