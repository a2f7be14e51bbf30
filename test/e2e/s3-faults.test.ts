import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { FlakyProxy } from "../helpers/flaky-proxy.js";
import { call, errorCode } from "../helpers/http.js";
import { pushImage, randomImage } from "../helpers/oci.js";
import { runCli } from "../helpers/process.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { createBucket, s3StorageYaml } from "../helpers/s3.js";

const server = inject("s3");


describe.skipIf(!server)("S3 faults and bad configuration", () => {
  let proxy: FlakyProxy;
  let registry: TestRegistry;
  let work: string;
  let bucket: string;

  beforeAll(async () => {
    work = await tempDir("lain-s3-faults-");
    bucket = await createBucket(server!);
    proxy = await FlakyProxy.start(server!.endpoint);
    registry = await startTestRegistry({
      storageYaml: s3StorageYaml({ ...server!, endpoint: proxy.url }, bucket),
    });
  });
  afterAll(async () => {
    await registry?.close();
    await proxy?.close();
    await rm(work, { recursive: true, force: true });
  });

  it("retries connections the store resets now and then, and the request succeeds", async () => {
    const image = randomImage({ layers: 1 });
    proxy.dropConnections();
    proxy.resetNext = 2;
    await pushImage(registry.url, "faults/retry", "v1", image);
    const reply = await call("GET", `${registry.url}/v2/faults/retry/manifests/v1`);
    expect(reply.status).toBe(200);
    expect(reply.body.equals(image.manifest.content)).toBe(true);
    expect(proxy.resetNext).toBe(0);
  });

  it("answers 503 UNAVAILABLE with Retry-After while the store stays down, then recovers", async () => {
    const image = randomImage({ layers: 1 });
    await pushImage(registry.url, "faults/down", "v1", image);
    proxy.dropConnections();
    proxy.resetNext = Number.POSITIVE_INFINITY;
    const down = await call("GET", `${registry.url}/v2/faults/down/tags/list`);
    expect(down.status).toBe(503);
    expect(errorCode(down)).toBe("UNAVAILABLE");
    expect(down.headers["retry-after"]).toBeDefined();
    proxy.resetNext = 0;
    const up = await call("GET", `${registry.url}/v2/faults/down/tags/list`);
    expect(up.json()).toEqual({ name: "faults/down", tags: ["v1"] });
  });

  it("config check --connect says when the bucket is missing or the credentials are wrong", async () => {
    const good = join(work, "good.yml");
    await writeFile(good, `version: 0.1\nstorage:\n${s3StorageYaml(server!, bucket)}\n`);
    const ok = await runCli("config", "check", "--connect", good);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("storage: reachable");

    const missing = join(work, "missing.yml");
    await writeFile(missing, `version: 0.1\nstorage:\n${s3StorageYaml(server!, "no-such-bucket")}\n`);
    const noBucket = await runCli("config", "check", "--connect", missing);
    expect(noBucket.code).toBe(1);
    expect(noBucket.stdout).toContain("does not exist");
    // OK comes last and only when true: a failed connection is counted, never followed by OK.
    expect(noBucket.stdout).not.toContain(": OK");
    expect(noBucket.stdout.trimEnd().split("\n").at(-1)).toBe(`${missing}: 1 problem(s); the configuration is valid, but the registry cannot serve until they are fixed`);
    expect(ok.stdout.trimEnd().split("\n").at(-1)).toMatch(/: OK \(storage: s3,/);

    const wrong = join(work, "wrong.yml");
    await writeFile(wrong, `version: 0.1\nstorage:\n${s3StorageYaml({ ...server!, secretKey: "wrong" }, bucket)}\n`);
    const badKey = await runCli("config", "check", "--connect", wrong);
    expect(badKey.code).toBe(1);
    expect(badKey.stdout).toContain("credentials");
  });

  it("serve refuses to start on a missing bucket, saying so", async () => {
    const missing = join(work, "serve-missing.yml");
    await writeFile(missing, `version: 0.1\nhttp: {addr: "127.0.0.1:0"}\nstorage:\n${s3StorageYaml(server!, "no-such-bucket")}\n`);
    const result = await runCli("serve", missing);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("does not exist");
  });
});
