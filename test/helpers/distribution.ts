import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort, startServerProcess, type ServerProcess } from "./process.js";

export interface DistributionOptions {
  /** A filesystem rootdirectory, or */
  root?: string;
  /** a storage driver section in YAML (an s3 section). */
  storageYaml?: string;
  secret: string;
  /** Where to write its config.yml */
  configDir: string;
  /** More configuration, e.g. a proxy section. */
  extraYaml?: string;
  /** Its port (a restart keeps its address); a free one when unset. */
  port?: number;
}

/** Debian's docker-registry (CNCF distribution 2.8) on 127.0.0.1 serving `root`. */
export async function startDistribution(options: DistributionOptions): Promise<ServerProcess> {
  const port = options.port ?? (await freePort());
  const config = join(options.configDir, `distribution-${port}.yml`);
  await writeFile(
    config,
    [
      "version: 0.1",
      "log: {level: warn}",
      "storage:",
      options.storageYaml ?? `  filesystem: {rootdirectory: ${options.root}}`,
      "  delete: {enabled: true}",
      "http:",
      `  addr: 127.0.0.1:${port}`,
      `  secret: ${options.secret}`,
      options.extraYaml ?? "",
    ].join("\n"),
  );
  return startServerProcess("docker-registry", ["serve", config], port, distributionEnv());
}

/** The environment docker-registry is started with: distribution panics at start when AWS_CA_BUNDLE is set (it loads it for its S3 driver). */
export function distributionEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE;
  return env;
}
