import bcrypt from "bcryptjs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { libtrustKeyId } from "../../src/auth/libtrust.js";
import { CountingProxy } from "../helpers/counting-proxy.js";
import { call } from "../helpers/http.js";
import { artifactFor, indexOf, pushImage, pushManifest, randomImage, sha256 } from "../helpers/oci.js";
import { freePort, runCli, startLainProcess } from "../helpers/process.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { selfSignedIdentity, startTokenServer, type TokenServer } from "../helpers/token-issuer.js";
import { holdsBlobs } from "../helpers/store.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const available = hasTool("skopeo") && hasTool("openssl");

function mirrorYaml(remoteurl: string, extra: string[] = []): string {
  return ["proxy:", `  remoteurl: ${remoteurl}`, ...extra.map((line) => `  ${line}`)].join("\n");
}

describe.skipIf(!available)("mirror of a lain-registry peer", () => {
  let work: string;

  beforeAll(async () => {
    work = await tempDir("lain-mirror-peer-");
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("merges the peer's referrers with its own (a standby's, pushed while the peer was down), then writes its own back", async () => {
    const file = join(work, "standby-htpasswd");
    await writeFile(file, `ci:${bcrypt.hashSync("ci-password", 5)}\n`);
    const ci = { authorization: `Basic ${Buffer.from("ci:ci-password").toString("base64")}` };
    const peer = await startTestRegistry();
    const link = await CountingProxy.start(peer.url);
    const mirror = await startTestRegistry({ extraYaml: `${mirrorYaml(link.url, ["pushes: writeback"])}\nauth: {htpasswd: {realm: standby, path: ${file}}}` });
    try {
      const image = randomImage({ layers: 1 });
      await pushImage(peer.url, "lain/signed", "v1", image);
      const upstreamSignature = artifactFor(image.manifest, "application/vnd.example.signature");
      await pushImage(peer.url, "lain/signed", upstreamSignature.manifest.digest, upstreamSignature);
      const localSbom = artifactFor(image.manifest, "application/spdx+json");
      link.down = true;
      await until(async () => (await call("POST", `${mirror.url}/v2/lain/signed/blobs/uploads/`, { headers: ci })).status === 202, "the standby to see its peer down");
      await pushImage(mirror.url, "lain/signed", localSbom.manifest.digest, localSbom, ci);
      // The peer serves again but takes no writes yet: the standby's referrer waits in its journal.
      link.down = false;
      link.writesFail = true;
      await until(() => link.seen.some((s) => s.method === "POST" && s.status === 503), "a write-back the peer refused");

      const all = await call("GET", `${mirror.url}/v2/lain/signed/referrers/${image.manifest.digest}`, { headers: ci });
      const digests = all.json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest);
      expect(digests.sort()).toEqual([upstreamSignature.manifest.digest, localSbom.manifest.digest].sort());
      const filtered = await call("GET", `${mirror.url}/v2/lain/signed/referrers/${image.manifest.digest}?artifactType=application/vnd.example.signature`, { headers: ci });
      expect(filtered.json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest)).toEqual([upstreamSignature.manifest.digest]);

      link.writesFail = false;
      await until(async () => (await call("HEAD", `${peer.url}/v2/lain/signed/manifests/${localSbom.manifest.digest}`)).status === 200, "the write-back of the referrer");
      const onPeer = await call("GET", `${peer.url}/v2/lain/signed/referrers/${image.manifest.digest}`);
      expect(onPeer.json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest).sort()).toEqual(digests.sort());
    } finally {
      await mirror.close();
      await link.close();
      await peer.close();
    }
  });

  it("pulls from a peer behind htpasswd with proxy.username and proxy.password (basic)", async () => {
    const file = join(work, "htpasswd");
    await writeFile(file, `mirror:${bcrypt.hashSync("s3cret", 5)}\n`);
    const peer = await startTestRegistry({ extraYaml: `auth:\n  htpasswd:\n    realm: peer\n    path: ${file}` });
    const proxy = await CountingProxy.start(peer.url);
    const image = randomImage({ layers: 2 });
    const good = await startTestRegistry({ extraYaml: mirrorYaml(proxy.url, ["username: mirror", "password: s3cret"]) });
    const wrong = await startTestRegistry({ extraYaml: mirrorYaml(proxy.url, ["username: mirror", "password: guess"]) });
    try {
      const basic = `Basic ${Buffer.from("mirror:s3cret").toString("base64")}`;
      for (const item of [image.config, ...image.layers]) {
        const start = await call("POST", `${peer.url}/v2/lain/private/blobs/uploads/`, { headers: { authorization: basic } });
        const location = new URL(start.headers.location!, peer.url);
        location.searchParams.set("digest", item.digest);
        expect((await call("PUT", location.toString(), { headers: { authorization: basic }, body: item.content })).status).toBe(201);
      }
      const put = await call("PUT", `${peer.url}/v2/lain/private/manifests/v1`, {
        headers: { authorization: basic, "content-type": image.manifest.mediaType },
        body: image.manifest.content,
      });
      expect(put.status).toBe(201);

      const out = join(work, "basic-out");
      await skopeo("copy", `docker://${good.host}/lain/private:v1`, `oci:${out}:v1`);
      expect(sha256(await skopeo("inspect", "--raw", `docker://${good.host}/lain/private:v1`))).toBe(image.manifest.digest);

      const refused = await call("GET", `${wrong.url}/v2/lain/private/manifests/v1`);
      expect(refused.status).toBe(403);
      expect(refused.text).toContain("refused our credentials");

      // `config check --connect` tries the peer with the configured credentials.
      const check = async (password: string) => {
        const file = join(work, `check-${password}.yml`);
        await writeFile(file, ["version: 0.1", `storage: {filesystem: {rootdirectory: ${work}/check-store}}`, "http: {addr: 127.0.0.1:5000}", mirrorYaml(peer.url, ["username: mirror", `password: ${password}`])].join("\n"));
        return runCli("config", "check", "--connect", file);
      };
      const ok = await check("s3cret");
      expect(ok.code).toBe(0);
      expect(ok.stdout).toContain(`proxy: upstream ${peer.url} answers the registry API`);
      const bad = await check("guess");
      expect(bad.code).toBe(1);
      expect(bad.stdout).toContain("error: proxy: upstream");
    } finally {
      await good.close();
      await wrong.close();
      await proxy.close();
      await peer.close();
    }
  });

  describe("a peer behind Docker token auth (bearer)", () => {
    let realm: TokenServer;
    let peer: TestRegistry;

    beforeAll(async () => {
      const identity = await selfSignedIdentity(work, "auth");
      realm = await startTokenServer({
        key: identity.key,
        header: { kid: libtrustKeyId(identity.certificate.publicKey) },
        issuer: "auth",
        policy: (user) => (user === "mirror" ? ["pull", "push", "*"] : []),
      });
      peer = await startTestRegistry({
        extraYaml: `auth:\n  token:\n    realm: ${realm.realm}\n    service: peer\n    issuer: auth\n    rootcertbundle: ${identity.certPath}`,
      });
    });
    afterAll(async () => {
      await peer?.close();
      await realm?.close();
    });

    it("does the token dance with the peer's realm and reuses a token per scope until it expires", async () => {
      const mirror = await startTestRegistry({ extraYaml: mirrorYaml(peer.url, ["username: mirror", "password: any"]) });
      try {
        const images = ["amd64", "arm64"].map((architecture) => randomImage({ architecture, layers: 2 }));
        const index = indexOf(images);
        // Pushed straight into the peer's store through a second, unauthenticated registry on it.
        const writer = await startTestRegistry({ root: (peer as TestRegistry).root! });
        try {
          for (const image of images) await pushImage(writer.url, "lain/tokened", image.manifest.digest, image);
          await pushManifest(writer.url, "lain/tokened", "v1", index);
        } finally {
          await writer.close();
        }
        const out = join(work, "token-out");
        await skopeo("copy", "--all", `docker://${mirror.host}/lain/tokened:v1`, `oci:${out}:v1`);
        expect(sha256(await skopeo("inspect", "--raw", `docker://${mirror.host}/lain/tokened:v1`))).toBe(index.digest);
        const asked = realm.requests.filter((r) => r.scopes.includes("repository:lain/tokened:pull"));
        expect(asked.length).toBe(1);
        expect(asked[0]!.user).toBe("mirror");
      } finally {
        await mirror.close();
      }
    });
  });

  it("prefetches with `lain-registry mirror prefetch`, then serves the image with the peer gone", async () => {
    const peer = await startTestRegistry();
    const root = await tempDir("lain-mirror-prefetch-");
    const images = ["amd64", "arm64"].map((architecture) => randomImage({ architecture, layers: 2 }));
    const index = indexOf(images);
    for (const image of images) await pushImage(peer.url, "lain/registry", image.manifest.digest, image);
    await pushManifest(peer.url, "lain/registry", "v2.0", index);
    const config = join(work, "prefetch.yml");
    await writeFile(config, ["version: 0.1", `storage: {filesystem: {rootdirectory: ${root}}}`, "http: {addr: 127.0.0.1:0, secret: s}", mirrorYaml(peer.url)].join("\n"));

    const first = await runCli("mirror", "prefetch", "--config", config, "lain/registry:v2.0");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`^lain/registry:v2.0 ${index.digest}: 3 manifest\\(s\\), 6 blob\\(s\\), fetched \\d+\\.\\d KiB`));
    const again = await runCli("mirror", "prefetch", "--config", config, "lain/registry:v2.0");
    expect(again.stdout).toContain("already cached");
    const unknown = await runCli("mirror", "prefetch", "--config", config, "lain/nothing:v1");
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toContain(`unknown to upstream ${peer.url}`);
    expect((await runCli("mirror", "prefetch", "--config", config, "not a reference")).code).toBe(2);

    await peer.close();
    const mirror = await startTestRegistry({ root, extraYaml: mirrorYaml(peer.url) });
    try {
      const out = join(work, "prefetched");
      await skopeo("copy", "--all", `docker://${mirror.host}/lain/registry:v2.0`, `oci:${out}:v2.0`);
      expect(sha256(await skopeo("inspect", "--raw", `docker://${mirror.host}/lain/registry:v2.0`))).toBe(index.digest);
    } finally {
      await mirror.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it("keeps proxy.prefetch references warm from the start, in a serving process", async () => {
    const peer = await startTestRegistry();
    const image = randomImage({ layers: 3 });
    await pushImage(peer.url, "lain/registry", "v3", image);
    const root = await tempDir("lain-mirror-warm-");
    const port = await freePort();
    const config = join(work, "warm.yml");
    await writeFile(
      config,
      ["version: 0.1", `storage: {filesystem: {rootdirectory: ${root}}}`, "http: {secret: s}", mirrorYaml(peer.url, ["prefetch: [lain/registry:v3]"])].join("\n"),
    );
    const mirror = await startLainProcess(config, port);
    try {
      const cached = () => holdsBlobs(root, [image.config, ...image.layers].map((b) => b.digest));
      await expect.poll(cached, { timeout: 10_000 }).toBe(true);
      await peer.close();
      const out = join(work, "warm-out");
      await skopeo("copy", `docker://${mirror.host}/lain/registry:v3`, `oci:${out}:v3`);
      expect(sha256(await skopeo("inspect", "--raw", `docker://${mirror.host}/lain/registry:v3`))).toBe(image.manifest.digest);
    } finally {
      await mirror.stop();
      await rm(root, { recursive: true, force: true });
    }
  });

  it("retries a prefetch the peer cannot answer yet within seconds, not a ttl later; /health shows each reference", async () => {
    const peerPort = await freePort();
    const root = await tempDir("lain-mirror-late-");
    const config = join(work, "late.yml");
    await writeFile(
      config,
      ["version: 0.1", `storage: {filesystem: {rootdirectory: ${root}}}`, "http: {secret: s}", mirrorYaml(`http://127.0.0.1:${peerPort}`, ["ttl: 1h", "prefetch: [lain/registry:v4]"])].join("\n"),
    );
    const mirror = await startLainProcess(config, await freePort());
    let peer: TestRegistry | undefined;
    try {
      type Health = { status: string; prefetch: { references: Array<{ reference: string; digest?: string; error?: string }>; error?: string }; upstream: { reachable: boolean } };
      const health = async () => (await call("GET", `${mirror.url}/health`)).json<Health>();
      await expect.poll(async () => (await health()).prefetch.references[0]?.error, { timeout: 10_000 }).toMatch(/unreachable/);
      const down = await call("GET", `${mirror.url}/health`);
      expect(down.status).toBe(200);
      expect(down.json<Health>()).toMatchObject({ status: "degraded", prefetch: { error: expect.stringContaining("1 of 1") }, upstream: { reachable: false } });

      // The peer comes up after the mirror: the image is cached on a retry, with ttl at an hour.
      peer = await startTestRegistry({ addr: `127.0.0.1:${peerPort}` });
      const image = randomImage({ layers: 2 });
      await pushImage(peer.url, "lain/registry", "v4", image);
      await expect.poll(() => holdsBlobs(root, [image.config, ...image.layers].map((b) => b.digest)), { timeout: 30_000, interval: 200 }).toBe(true);
      await expect.poll(async () => (await health()).prefetch.references[0]?.digest, { timeout: 10_000 }).toBe(image.manifest.digest);
      // The peer's check is reused a few seconds: then it says the peer answers.
      await expect.poll(async () => (await health()).status, { timeout: 10_000, interval: 500 }).toBe("ok");
    } finally {
      await mirror.stop();
      await peer?.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
