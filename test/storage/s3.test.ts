import { describe, expect, inject, it } from "vitest";
import { s3Driver } from "../../src/storage/factory.js";
import { S3Store } from "../../src/storage/s3.js";
import { s3TestDriver, s3TestOptions } from "../helpers/s3.js";
import { driverContract } from "./contract.js";

const server = inject("s3");

describe.skipIf(!server)("s3 driver on Ceph RGW", () => {
  if (!server) return;
  driverContract("s3", { create: () => s3TestDriver(server) });

  it("keys objects as distribution does: rootdirectory + path, no leading slash", async () => {
    const driver = await s3TestDriver(server, { rootDirectory: "/registry/" });
    await driver.putContent("/docker/registry/v2/x", Buffer.from("1"));
    const bare = await s3Driver({ ...(driver.store as S3Store).options, rootDirectory: "" });
    expect((await bare.getContent("/registry/docker/registry/v2/x")).toString()).toBe("1");
  });

  it("verify() names a missing bucket and wrong credentials", async () => {
    await expect((await s3Driver(s3TestOptions(server, "no-such-bucket-here"))).verify()).rejects.toThrow(/does not exist/);
    const driver = await s3TestDriver(server);
    const wrong = await s3Driver({ ...(driver.store as S3Store).options, secretKey: "wrong" });
    await expect(wrong.verify()).rejects.toThrow(/credentials/);
  });

  it("takes credentials from the standard AWS environment when the config has none", async () => {
    const driver = await s3TestDriver(server);
    const { accessKey: _a, secretKey: _s, ...withoutKeys } = (driver.store as S3Store).options;
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = server.accessKey;
    process.env.AWS_SECRET_ACCESS_KEY = server.secretKey;
    try {
      const fromEnvironment = await s3Driver(withoutKeys);
      await fromEnvironment.putContent("/from-env", Buffer.from("signed with environment credentials"));
      expect((await driver.getContent("/from-env")).toString()).toBe("signed with environment credentials");
    } finally {
      for (const [name, value] of [["AWS_ACCESS_KEY_ID", saved.id], ["AWS_SECRET_ACCESS_KEY", saved.secret]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it("presigns a GET URL the store serves without credentials", async () => {
    const driver = await s3TestDriver(server);
    await driver.putContent("/blob", Buffer.from("redirected bytes"));
    const url = await driver.redirectURL("/blob");
    const reply = await fetch(url!);
    expect(reply.status).toBe(200);
    expect(await reply.text()).toBe("redirected bytes");
  });
});
