import { spawn } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/http.js";
import { pushImage, randomImage } from "../helpers/oci.js";
import { cliArgs, freePort, supervise } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { RGW_TOOLS, startRgw, type RunningRgw } from "../helpers/rgw.js";
import { createBucket, s3StorageYaml } from "../helpers/s3.js";
import { hasTool } from "../helpers/tools.js";

const UNIT = new URL("../../config/systemd/lain-registry.service", import.meta.url).pathname;
/** The store comes up this long after the registry's first start, as after a reboot where it is late. */
const STORE_LATE_MS = 10_000;

/** The restart policy of the shipped unit, read from its file, with systemd's defaults. */
interface RestartPolicy {
  restart: string;
  restartSec: number;
  preventExitStatus: number[];
  startLimitIntervalSec: number;
  startLimitBurst: number;
}

function restartPolicy(unit: string): RestartPolicy {
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, "m").exec(unit)?.[1]?.trim();
  return {
    restart: value("Restart") ?? "no",
    restartSec: Number(value("RestartSec") ?? 0.1),
    preventExitStatus: (value("RestartPreventExitStatus") ?? "").split(/\s+/).filter(Boolean).map(Number),
    startLimitIntervalSec: Number(value("StartLimitIntervalSec") ?? 10),
    startLimitBurst: Number(value("StartLimitBurst") ?? 5),
  };
}

describe.skipIf(!RGW_TOOLS.every(hasTool))("a store that comes up after the registry, under the shipped unit's restart policy", () => {
  let rgw: RunningRgw;
  let work: string;
  beforeAll(async () => {
    work = await tempDir("lain-late-store-");
    rgw = await startRgw();
  });
  afterAll(async () => {
    await rgw?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("serve exits 1 while S3 refuses connections, is started again as systemd would, and serves once the store answers", async () => {
    const bucket = await createBucket(rgw, "late");
    await rgw.stopGateway();
    const policy = restartPolicy(await readFile(UNIT, "utf8"));
    const port = await freePort();
    const config = join(work, "config.yml");
    await writeFile(config, `version: 0.1\nhttp: {addr: "127.0.0.1:${port}", secret: late}\nstorage:\n${s3StorageYaml(rgw, bucket)}\n`);
    const env = { ...process.env };
    delete env.AWS_CA_BUNDLE;

    const gatewayBack = new Promise<void>((resolve, reject) => setTimeout(() => rgw.startGateway().then(resolve, reject), STORE_LATE_MS));
    const exits: Array<{ code: number | null; stderr: string }> = [];
    const starts: number[] = [];
    let serving: ReturnType<typeof supervise> | undefined;
    try {
      // systemd's part: start, and on an exit that Restart= covers, start again after RestartSec,
      // unless the status is one RestartPreventExitStatus names or the start limit is hit.
      for (let attempt = 0; attempt < 30 && !serving; attempt++) {
        const now = Date.now();
        starts.push(now);
        const recent = starts.filter((t) => now - t < policy.startLimitIntervalSec * 1000);
        if (policy.startLimitIntervalSec > 0 && recent.length > policy.startLimitBurst) throw new Error(`the start limit would stop the unit after ${starts.length} starts`);
        const run = supervise(spawn(process.execPath, cliArgs("serve", config), { env, stdio: ["ignore", "pipe", "pipe"] }));
        const outcome = await new Promise<"serving" | number | null>((resolve) => {
          run.child.once("exit", (code) => resolve(code));
          const poll = async () => {
            if (run.child.exitCode !== null) return;
            const up = await call("GET", `http://127.0.0.1:${port}/health`).then((r) => r.status === 200, () => false);
            if (up) resolve("serving");
            else setTimeout(poll, 100);
          };
          void poll();
        });
        if (outcome === "serving") {
          serving = run;
          break;
        }
        exits.push({ code: outcome, stderr: run.output() });
        if (outcome === 0 || outcome === null || policy.restart !== "on-failure" || policy.preventExitStatus.includes(outcome)) {
          throw new Error(`the unit would not restart after exit ${outcome}: ${run.output()}`);
        }
        await new Promise((resolve) => setTimeout(resolve, policy.restartSec * 1000));
      }
      await gatewayBack;
      expect(serving).toBeDefined();
      // It started before the store and waited for it by exiting 1, each time saying why.
      expect(exits.length).toBeGreaterThan(0);
      for (const exit of exits) {
        expect(exit.code).toBe(1);
        expect(exit.stderr).toMatch(/config error: storage\.s3\.regionendpoint: s3 bucket "late[^"]*" at http:\/\/127\.0\.0\.1:\d+ is not reachable/);
        expect(exit.stderr).toContain("exiting 1, for the supervisor to start it again");
      }
      const url = `http://127.0.0.1:${port}`;
      const image = randomImage({ layers: 1 });
      await pushImage(url, "late/app", "v1", image);
      expect((await call("GET", `${url}/v2/late/app/manifests/v1`, { headers: { accept: image.manifest.mediaType } })).body.equals(image.manifest.content)).toBe(true);
    } finally {
      await gatewayBack.catch(() => undefined);
      await serving?.stop();
    }
  }, 120_000);

  it("a configuration wrong in itself exits 2, which the unit does not restart", async () => {
    const config = join(work, "wrong.yml");
    await writeFile(config, `version: 0.1\nhttp: {addr: "127.0.0.1:0"}\nstorage:\n${s3StorageYaml(rgw, "no-such-bucket")}\n`);
    const env = { ...process.env };
    delete env.AWS_CA_BUNDLE;
    const run = supervise(spawn(process.execPath, cliArgs("serve", config), { env, stdio: ["ignore", "pipe", "pipe"] }));
    const code = await new Promise<number | null>((resolve) => run.child.once("exit", resolve));
    expect(code).toBe(2);
    expect(restartPolicy(await readFile(UNIT, "utf8")).preventExitStatus).toContain(2);
    expect(run.output()).toContain("does not exist");
  });
});
