import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { randomBytes } from "node:crypto";
import { s3Driver } from "../../src/storage/factory.js";
import type { ObjectStoreDriver } from "../../src/storage/object-store-driver.js";
import { createS3Client, type S3Options } from "../../src/storage/s3.js";
import type { S3Server } from "./rgw.js";

const MiB = 1024 * 1024;

/** Options for a fresh bucket on the test S3 server (small parts, so tests exercise many). */
export function s3TestOptions(server: S3Server, bucket: string, overrides: Partial<S3Options> = {}): S3Options {
  return {
    accessKey: server.accessKey,
    secretKey: server.secretKey,
    region: server.region,
    regionEndpoint: server.endpoint,
    bucket,
    secure: false,
    skipVerify: false,
    chunkSize: 5 * MiB,
    rootDirectory: "/registry",
    encrypt: false,
    storageClass: "STANDARD",
    multipartCopyChunkSize: 5 * MiB,
    multipartCopyMaxConcurrency: 4,
    multipartCopyThresholdSize: 5 * MiB,
    ...overrides,
  };
}

export async function createBucket(server: S3Server, prefix = "lain"): Promise<string> {
  const bucket = `${prefix}-${randomBytes(6).toString("hex")}`;
  const client = createS3Client(s3TestOptions(server, bucket));
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  client.destroy();
  return bucket;
}

/** The storage.s3 section distribution and lain-registry both read, for a test bucket. */
export function s3StorageYaml(server: S3Server, bucket: string, extra: Record<string, string | number | boolean> = {}): string {
  const params: Record<string, string | number | boolean> = {
    accesskey: server.accessKey,
    secretkey: server.secretKey,
    region: server.region,
    regionendpoint: server.endpoint,
    bucket,
    secure: false,
    v4auth: true,
    chunksize: 5 * MiB,
    rootdirectory: "/registry",
    ...extra,
  };
  return ["  s3:", ...Object.entries(params).map(([k, v]) => `    ${k}: ${v}`)].join("\n");
}

export async function s3TestDriver(server: S3Server, overrides: Partial<S3Options> = {}): Promise<ObjectStoreDriver> {
  return s3Driver(s3TestOptions(server, await createBucket(server), overrides));
}
