import type { TestProject } from "vitest/node";
import { RGW_TOOLS, startRgw, type S3Server } from "./helpers/rgw.js";
import { skipNotice } from "./helpers/skip-notice.js";
import { hasTool } from "./helpers/tools.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The run's S3 server (Ceph RGW on 127.0.0.1), or null where Ceph is not installed. */
    s3: S3Server | null;
  }
}

/** One RGW for the whole run: suites create their own buckets on it. */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const notice = await skipNotice();
  if (notice) process.stderr.write(`\n${notice}\n\n`);
  if (!RGW_TOOLS.every(hasTool)) {
    project.provide("s3", null);
    return undefined;
  }
  const rgw = await startRgw();
  project.provide("s3", { endpoint: rgw.endpoint, region: rgw.region, accessKey: rgw.accessKey, secretKey: rgw.secretKey });
  return () => rgw.stop();
}
