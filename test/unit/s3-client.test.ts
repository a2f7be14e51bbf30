import { afterEach, describe, expect, it } from "vitest";
import { s3Options } from "../../src/config/storage-driver.js";
import { createS3Client } from "../../src/storage/s3.js";

const saved = process.env.AWS_CA_BUNDLE;
afterEach(() => {
  if (saved === undefined) delete process.env.AWS_CA_BUNDLE;
  else process.env.AWS_CA_BUNDLE = saved;
});

describe("S3 client settings", () => {
  it("reads AWS_CA_BUNDLE itself (the JS SDK ignores it) and names it when unreadable", () => {
    process.env.AWS_CA_BUNDLE = "/nonexistent/ca.pem";
    expect(() => createS3Client(s3Options({ bucket: "b" }))).toThrow(/AWS_CA_BUNDLE=\/nonexistent\/ca.pem cannot be read/);
  });

  it("applies distribution's defaults and limits", () => {
    const options = s3Options({ bucket: "b", regionendpoint: "http://store:7480" });
    expect(options).toMatchObject({
      region: "us-east-1",
      chunkSize: 10 * 1024 * 1024,
      secure: true,
      storageClass: "STANDARD",
      multipartCopyThresholdSize: 32 * 1024 * 1024,
      rootDirectory: "",
    });
    const thrown = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err;
      }
      return undefined;
    };
    expect(thrown(() => s3Options({ bucket: "b", chunksize: 1024 }))).toMatchObject({ path: "storage.s3.chunksize" });
    expect(thrown(() => s3Options({}))).toMatchObject({ path: "storage.s3.bucket" });
  });
});
