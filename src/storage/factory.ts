import type { ObjectStoreDriver } from "./object-store-driver.js";
import type { OssOptions } from "./oss.js";
import type { S3Options } from "./s3.js";

const MiB = 1024 * 1024;

/**
 * The object-store drivers from typed options; each loads only when used (the S3 and OSS SDKs
 * are ~45 MiB of memory). Reading them from a configuration is config/storage-driver.ts's work.
 */
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
