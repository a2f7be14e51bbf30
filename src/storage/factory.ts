import { resolve } from "node:path";
import type { StorageConfig } from "../config/config.js";
import { DEFAULT_ROOT_DIRECTORY } from "../config/schema.js";
import type { StorageDriver } from "./driver.js";
import type { ObjectStoreDriver } from "./object-store-driver.js";
import { S3_MIN_PART } from "./object-store.js";
import type { OssOptions } from "./oss.js";
import type { S3Options } from "./s3.js";
import { asBool, asInt } from "../config/validate.js";
import { ConfigError } from "../config/config-error.js";


/**
 * The configured driver; each loads only when configured (the S3 and OSS SDKs are ~45 MiB of
 * memory, the object-store layer beside them is not needed on disk).
 */
export async function createDriver(storage: StorageConfig): Promise<StorageDriver> {
  switch (storage.driver) {
    case "filesystem": {
      const root = storage.parameters.rootdirectory;
      return new (await import("./filesystem.js")).FilesystemDriver(resolve(typeof root === "string" && root !== "" ? root : DEFAULT_ROOT_DIRECTORY));
    }
    case "inmemory":
      return new (await import("./inmemory.js")).InMemoryDriver();
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

export async function s3Driver(options: S3Options): Promise<ObjectStoreDriver> {
  const [{ S3Store }, { ObjectStoreDriver }] = await Promise.all([import("./s3.js"), import("./object-store-driver.js")]);
  return new ObjectStoreDriver(new S3Store(options), {
    rootDirectory: options.rootDirectory,
    partSize: options.chunkSize,
    copyThreshold: options.multipartCopyThresholdSize,
    copyChunk: options.multipartCopyChunkSize,
    copyConcurrency: options.multipartCopyMaxConcurrency,
  });
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

export async function ossDriver(options: OssOptions): Promise<ObjectStoreDriver> {
  const [{ OssStore }, { ObjectStoreDriver }] = await Promise.all([import("./oss.js"), import("./object-store-driver.js")]);
  // distribution's oss driver copies objects whole; OSS copies up to 1 GiB in one request.
  return new ObjectStoreDriver(new OssStore(options), {
    rootDirectory: options.rootDirectory,
    partSize: options.chunkSize,
    copyThreshold: 1024 * MiB,
    copyChunk: 64 * MiB,
    copyConcurrency: 8,
  });
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
