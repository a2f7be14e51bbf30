import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StorageUnavailableError } from "../../src/storage/driver.js";
import { ossDriver } from "../../src/storage/factory.js";
import type { OssOptions } from "../../src/storage/oss.js";
import { OSS_CREDENTIALS as CREDENTIALS, ossTestOptions as options, OssTestServer } from "../helpers/oss-server.js";
import { driverContract } from "./contract.js";

const servers: OssTestServer[] = [];

async function freshDriver(overrides: Partial<OssOptions> = {}) {
  const bucket = `lain-${servers.length}`;
  const server = await OssTestServer.start({ bucket, ...CREDENTIALS });
  servers.push(server);
  return { server, bucket, driver: await ossDriver(options(server, bucket, overrides)) };
}

afterAll(async () => {
  for (const server of servers) await server.close();
});

driverContract("oss", { create: async () => (await freshDriver()).driver });

describe("oss driver against a signature-checking OSS server", () => {
  let server: OssTestServer;
  let bucket: string;
  beforeAll(async () => {
    ({ server, bucket } = await freshDriver());
  });

  it("keys objects as distribution's oss driver does: rootdirectory + path", async () => {
    const driver = await ossDriver(options(server, bucket));
    await driver.putContent("/docker/registry/v2/repositories/a/_layers/x/link", Buffer.from("l"));
    expect(server.keys()).toContain("registry/docker/registry/v2/repositories/a/_layers/x/link");
  });

  it("the server refuses a wrong secret, and verify() says the credentials are wrong", async () => {
    const before = server.rejected;
    const wrong = await ossDriver(options(server, bucket, { accessKeySecret: "not-the-secret" }));
    await expect(wrong.verify()).rejects.toThrow(/credentials/);
    await expect(wrong.putContent("/x", Buffer.from("no"))).rejects.toThrow(/signature/i);
    expect(server.rejected).toBeGreaterThan(before);
    expect(server.keys()).not.toContain("registry/x");
  });

  it("a request signed for another bucket does not verify", async () => {
    const other = await ossDriver(options(server, "another-bucket"));
    await expect(other.verify()).rejects.toThrow(/credentials|SignatureDoesNotMatch/);
  });

  it("presigns GET URLs the server accepts without other credentials, and refuses when tampered", async () => {
    const driver = await ossDriver(options(server, bucket));
    await driver.putContent("/presigned", Buffer.from("straight from the store"));
    const url = await driver.redirectURL("/presigned");
    const ok = await fetch(url!);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("straight from the store");
    const tampered = await fetch(url!.replace("presigned", "presignee"));
    expect(tampered.status).toBe(403);
  });

  it("retries requests OSS answers with 503, and reports a persistent outage as unavailable", async () => {
    const driver = await ossDriver(options(server, bucket));
    server.failNext = 2;
    await driver.putContent("/after-503", Buffer.from("made it"));
    expect((await driver.getContent("/after-503")).toString()).toBe("made it");
    expect(server.failNext).toBe(0);
    server.failNext = 1000;
    await expect(driver.getContent("/after-503")).rejects.toBeInstanceOf(StorageUnavailableError);
    server.failNext = 0;
  });

  it("a cancelled writer leaves no unfinished upload behind", async () => {
    const driver = await ossDriver(options(server, bucket));
    const writer = await driver.writer("/cancel/me", false);
    writer.stream.write(Buffer.alloc(1000));
    await writer.cancel();
    expect(server.pendingUploads()).toBe(0);
  });
});
