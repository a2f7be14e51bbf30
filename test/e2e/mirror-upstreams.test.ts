import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CountingProxy } from "../helpers/counting-proxy.js";
import { startDistribution } from "../helpers/distribution.js";
import { FlakyProxy } from "../helpers/flaky-proxy.js";
import { call, errorCode } from "../helpers/http.js";
import { OCI_LAYER, pushBlob, sha256 } from "../helpers/oci.js";
import type { ServerProcess } from "../helpers/process.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";

/**
 * proxy.remoteurl as a list of equivalent upstreams: a mirror in front of one that answers 503,
 * one whose connections are reset, and Debian's docker-registry behind a counting proxy.
 */
describe.skipIf(!hasTool("docker-registry"))("mirror: a list of upstreams, tried in order", () => {
  let work: string;
  let peer: ServerProcess;
  let healthy: CountingProxy;
  let unreachable: FlakyProxy;
  let failing: Server;
  let failingUrl: string;
  let failingAsked = 0;
  let mirror: TestRegistry;
  let lonely: TestRegistry;

  beforeAll(async () => {
    work = await tempDir("lain-upstreams-");
    await mkdir(join(work, "peer"));
    peer = await startDistribution({ root: join(work, "peer"), secret: "peer", configDir: work });
    healthy = await CountingProxy.start(peer.url);
    unreachable = await FlakyProxy.start(peer.url);
    unreachable.resetNext = Infinity;
    failing = createServer((_req, res) => {
      failingAsked++;
      res.writeHead(503, { "content-type": "text/plain" }).end("down for maintenance");
    });
    await new Promise<void>((resolve) => failing.listen(0, "127.0.0.1", resolve));
    failingUrl = `http://127.0.0.1:${(failing.address() as AddressInfo).port}`;
    mirror = await startTestRegistry({ extraYaml: `proxy:\n  remoteurl: [${failingUrl}, ${unreachable.url}, ${healthy.url}]\n  timeouts: {connect: 2s}` });
    lonely = await startTestRegistry({ extraYaml: `proxy:\n  remoteurl: [${failingUrl}, ${unreachable.url}]` });
  });

  afterAll(async () => {
    await lonely?.close();
    await mirror?.close();
    await healthy?.close();
    await unreachable?.close();
    await new Promise((resolve) => failing?.close(resolve));
    await peer?.stop();
    await rm(work, { recursive: true, force: true });
  });

  async function blobOnPeer(): Promise<{ digest: string; content: Buffer }> {
    const content = randomBytes(300_000);
    const blob = { mediaType: OCI_LAYER, digest: sha256(content), content };
    await pushBlob(peer.url, "lain/app", blob);
    return blob;
  }

  it("fails over past a 5xx and a reset connection to the upstream that answers, and passes over the failed ones for a while", async () => {
    const first = await blobOnPeer();
    const reply = await call("GET", `${mirror.url}/v2/lain/app/blobs/${first.digest}`);
    expect(reply.status).toBe(200);
    expect(sha256(reply.body)).toBe(first.digest);
    expect(failingAsked).toBe(1);
    expect(unreachable.accepted).toBeGreaterThanOrEqual(1);
    expect(healthy.count("GET", new RegExp(first.digest))).toBe(1);

    // Remembered as down: the next requests go straight to the one that answered.
    const [asked, accepted] = [failingAsked, unreachable.accepted];
    const second = await blobOnPeer();
    const again = await call("GET", `${mirror.url}/v2/lain/app/blobs/${second.digest}`);
    expect(again.status).toBe(200);
    expect(sha256(again.body)).toBe(second.digest);
    expect([failingAsked, unreachable.accepted]).toEqual([asked, accepted]);
    expect(healthy.count("GET", new RegExp(second.digest))).toBe(1);
  });

  it("answers 503 UNAVAILABLE naming the last upstream when none of them can", async () => {
    const blob = await blobOnPeer();
    const reply = await call("GET", `${lonely.url}/v2/lain/app/blobs/${blob.digest}`);
    expect(reply.status).toBe(503);
    expect(errorCode(reply)).toBe("UNAVAILABLE");
    expect(reply.text).toContain(unreachable.url);
  });
});
