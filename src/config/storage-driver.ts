import { resolve } from "node:path";
import { ConfigError } from "../refusal.js";
import type { StorageDriver } from "../storage/driver.js";
import { ossDriver, s3Driver } from "../storage/factory.js";
import { S3_MIN_PART } from "../storage/object-store.js";
import type { OssOptions } from "../storage/oss.js";
import type { S3Options } from "../storage/s3.js";
import type { StorageConfig } from "./config.js";
import { DEFAULT_ROOT_DIRECTORY } from "./schema.js";
import { asBool, asInt } from "./validate.js";

/**
 * The configured driver; each loads only when configured (the S3 and OSS SDKs are ~45 MiB of
 * memory, the object-store layer beside them is not needed on disk).
 */
export async function createDriver(storage: StorageConfig): Promise<StorageDriver> {
  switch (storage.driver) {
    case "filesystem": {
      const root = storage.parameters.rootdirectory;
      return new (await import("../storage/filesystem.js")).FilesystemDriver(resolve(typeof root === "string" && root !== "" ? root : DEFAULT_ROOT_DIRECTORY));
    }
    case "inmemory":
      return new (await import("../storage/inmemory.js")).InMemoryDriver();
    case "s3":
      return s3Driver(s3Options(storage.parameters));
    case "oss":
      return ossDriver(ossOptions(storage.parameters));
    default:
      throw new ConfigError(`storage.${storage.driver}`, `is not a storage driver of this version`);
  }
}

const MiB = 1024 * 1024;

function text(value: unknown): string | undefined {
  return value === undefined || value === null || value === "" ? undefined : String(value);
}

function required(p: Record<string, unknown>, driver: string, key: string): string {
  const value = text(p[key]);
  if (value === undefined) throw new ConfigError(`storage.${driver}.${key}`, "is required");
  return value;
}

/** storage.s3 with distribution's defaults. */
export function s3Options(p: Record<string, unknown>): S3Options {
  const bucket = required(p, "s3", "bucket");
  const chunkSize = asInt(p.chunksize) ?? 10 * MiB;
  if (chunkSize < S3_MIN_PART) throw new ConfigError("storage.s3.chunksize", `must be at least ${S3_MIN_PART} (S3's smallest part)`);
  return {
    accessKey: text(p.accesskey),
    secretKey: text(p.secretkey),
    sessionToken: text(p.sessiontoken),
    region: text(p.region) ?? "us-east-1",
    regionEndpoint: text(p.regionendpoint),
    forcePathStyle: asBool(p.forcepathstyle),
    bucket,
    secure: asBool(p.secure) ?? true,
    skipVerify: asBool(p.skipverify) ?? false,
    chunkSize,
    rootDirectory: text(p.rootdirectory) ?? "",
    encrypt: asBool(p.encrypt) ?? false,
    keyId: text(p.keyid),
    storageClass: text(p.storageclass) ?? "STANDARD",
    multipartCopyChunkSize: asInt(p.multipartcopychunksize) ?? 32 * MiB,
    multipartCopyMaxConcurrency: asInt(p.multipartcopymaxconcurrency) ?? 100,
    multipartCopyThresholdSize: asInt(p.multipartcopythresholdsize) ?? 32 * MiB,
  };
}

/** storage.oss with distribution's defaults (chunksize 10 MiB, at least 5 MiB). */
export function ossOptions(p: Record<string, unknown>): OssOptions {
  const bucket = required(p, "oss", "bucket");
  const accessKeyId = required(p, "oss", "accesskeyid");
  const accessKeySecret = required(p, "oss", "accesskeysecret");
  const chunkSize = asInt(p.chunksize) ?? 10 * MiB;
  if (chunkSize < 5 * MiB) throw new ConfigError("storage.oss.chunksize", "must be at least 5242880");
  return {
    accessKeyId,
    accessKeySecret,
    region: text(p.region) ?? "oss-cn-hangzhou",
    endpoint: text(p.endpoint),
    // The LAIN README's sample puts a placeholder sentence here; only a real boolean turns it on.
    internal: asBool(p.internal) ?? false,
    cname: asBool(p.cname) ?? false,
    bucket,
    encrypt: asBool(p.encrypt) ?? false,
    secure: asBool(p.secure) ?? true,
    chunkSize,
    rootDirectory: text(p.rootdirectory) ?? "",
  };
}
