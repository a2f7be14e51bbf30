import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode } from "../helpers/http.js";
import { sha256 } from "../helpers/oci.js";
import { freePort, runCli, startLainProcess, startServerProcess } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { hasTool } from "../helpers/tools.js";

/** YAML 1.1's spellings of true and false, which distribution's YAML library takes and YAML 1.2 does not. */
const SPELLINGS: Array<[string, boolean]> = [
  ["yes", true], ["Yes", true], ["on", true], ["ON", true], ["y", true], ["True", true],
  ["no", false], ["No", false], ["off", false], ["n", false], ["FALSE", false],
];

/** What `storage.delete.enabled` means to a registry, asked through the API: a blob DELETE is refused only when deletes are off. */
async function deletesEnabled(url: string): Promise<boolean> {
  const reply = await call("DELETE", `${url}/v2/dialect/app/blobs/${sha256("absent")}`);
  if (reply.status === 405) return false;
  expect(errorCode(reply)).toBe("BLOB_UNKNOWN");
  return true;
}

describe.skipIf(!hasTool("docker-registry"))("distribution's YAML dialect: a configuration Debian's docker-registry accepts loads with the same meaning", () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir("lain-yaml-dialect-");
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it.each(SPELLINGS)("storage.delete.enabled: %s", async (spelling, meant) => {
    const config = async (name: string, port: number) => {
      const path = join(work, `${name}-${spelling}.yml`);
      await writeFile(path, `version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: ${join(work, `${name}-${spelling}`)}}\n  delete: {enabled: ${spelling}}\nhttp: {addr: "127.0.0.1:${port}", secret: s}\n`);
      return path;
    };
    const env = { ...process.env };
    delete env.AWS_CA_BUNDLE;
    const distributionPort = await freePort();
    const distribution = await startServerProcess("docker-registry", ["serve", await config("distribution", distributionPort)], distributionPort, env);
    try {
      expect(await deletesEnabled(distribution.url)).toBe(meant);
    } finally {
      await distribution.stop();
    }
    const lainPort = await freePort();
    const lainConfig = await config("lain", lainPort);
    expect((await runCli("config", "check", lainConfig)).code).toBe(0);
    const lain = await startLainProcess(lainConfig, lainPort);
    try {
      expect(await deletesEnabled(lain.url)).toBe(meant);
    } finally {
      await lain.stop();
    }
  });
});
