/**
 * A standby's write-back (proxy.pushes: writeback): what journaling costs a push, and how fast the
 * journal reaches the primary once it is back. Three contenders take the same pushes of small
 * images, alternating rounds: a lain standby whose primary is down (every push journaled), the
 * same lain without a proxy section (the cost is the difference), and distribution. All three
 * authenticate with the same htpasswd file. Then the primary starts, and the standby replays all
 * that it took; that time is set beside the client's own pushes of as many images.
 */
import bcrypt from "bcryptjs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startDistribution } from "../test/helpers/distribution.js";
import { call } from "../test/helpers/http.js";
import { pushImage, randomImage, type Image } from "../test/helpers/oci.js";
import { freePort, startLainProcess, type ServerProcess } from "../test/helpers/process.js";
import { median, settle } from "./load.js";

const IMAGES = Number(process.env.BENCH_WRITEBACK_IMAGES ?? 50);
const ROUNDS = 3;
const LAYER_KIB = 256;
const USER = { name: "bench", password: "bench-password" };
const BASIC = { authorization: `Basic ${Buffer.from(`${USER.name}:${USER.password}`).toString("base64")}` };

export interface WritebackMeasures {
  images: number;
  imageKiB: number;
  /** Images pushed per second (medians of the rounds). */
  standbyImagesPerSecond: number;
  plainImagesPerSecond: number;
  distributionImagesPerSecond: number;
  /** What the standby adds to each push: its time per image less the plain lain's. */
  journalMsPerImage: number;
  /** From the primary's first answer to an empty journal, for every image the standby took. */
  replaySeconds: number;
  replayedImages: number;
}

async function pushRound(url: string, round: number, images: Image[]): Promise<number> {
  const started = process.hrtime.bigint();
  for (const [i, image] of images.entries()) await pushImage(url, `bench/ci-${round}`, `v${i}`, image, BASIC);
  return images.length / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function pending(standby: ServerProcess): Promise<number> {
  return (await call("GET", `${standby.url}/health`)).json<{ writeback: { pending: number } }>().writeback.pending;
}

export async function measureWriteback(work: string, log: (line: string) => void): Promise<WritebackMeasures> {
  const htpasswd = join(work, "writeback-htpasswd");
  await writeFile(htpasswd, `${USER.name}:${bcrypt.hashSync(USER.password, 5)}\n`);
  const auth = `auth: {htpasswd: {realm: bench, path: ${htpasswd}}}`;
  const lainConfig = async (name: string, extra: string[]) => {
    const config = join(work, `writeback-${name}.yml`);
    await writeFile(config, ["version: 0.1", "log: {level: warn}", `storage: {filesystem: {rootdirectory: ${join(work, `writeback-${name}`)}}}`, "http: {secret: bench}", auth, ...extra].join("\n"));
    return config;
  };
  const primaryPort = await freePort();
  const primaryConfig = await lainConfig("primary", []);
  const servers: ServerProcess[] = [];
  try {
    const plain = await startLainProcess(await lainConfig("plain", []), await freePort());
    servers.push(plain);
    const standbyLines = ["proxy:", `  remoteurl: http://127.0.0.1:${primaryPort}`, "  pushes: writeback", `  username: ${USER.name}`, `  password: ${USER.password}`];
    const standby = await startLainProcess(await lainConfig("standby", standbyLines), await freePort());
    servers.push(standby);
    const distribution = await startDistribution({ root: join(work, "writeback-distribution"), secret: "bench", configDir: work, extraYaml: `${auth}\n` });
    servers.push(distribution);
    const contenders = [
      ["standby", standby],
      ["plain", plain],
      ["distribution", distribution],
    ] as const;
    const rates = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, server] of contenders) {
        const images = Array.from({ length: IMAGES }, () => randomImage({ layers: 2, layerSize: LAYER_KIB * 1024 }));
        settle();
        rates.get(name)!.push(await pushRound(server.url, round, images));
      }
    }
    for (const [name, values] of rates) log(`[write-back] ${name}: ${values.map((v) => v.toFixed(1)).join(", ")} images/s`);
    const [standbyRate, plainRate, distributionRate] = contenders.map(([name]) => median(rates.get(name)!)) as [number, number, number];
    const journaled = await pending(standby);
    if (journaled !== ROUNDS * IMAGES) throw new Error(`the standby journaled ${journaled} pushes of ${ROUNDS * IMAGES}`);

    servers.push(await startLainProcess(primaryConfig, primaryPort));
    // From the primary's first answer: what the standby's own checks and the replay take.
    const started = Date.now();
    const deadline = started + 600_000;
    while ((await pending(standby)) > 0) {
      if (Date.now() > deadline) throw new Error("the replay did not end within 10 minutes");
      await new Promise((r) => setTimeout(r, 100));
    }
    const replaySeconds = (Date.now() - started) / 1000;
    log(`[write-back] replay of ${journaled} images ${replaySeconds.toFixed(2)} s`);
    return {
      images: IMAGES,
      imageKiB: 2 * LAYER_KIB,
      standbyImagesPerSecond: standbyRate,
      plainImagesPerSecond: plainRate,
      distributionImagesPerSecond: distributionRate,
      journalMsPerImage: 1000 / standbyRate - 1000 / plainRate,
      replaySeconds,
      replayedImages: journaled,
    };
  } finally {
    for (const server of servers.reverse()) await server.stop();
  }
}
