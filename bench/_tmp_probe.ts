import { join } from "node:path";
import { mkdir } from "node:fs/promises";
import { Agent, request } from "undici";
import { pino } from "pino";
import { startDistribution } from "../test/helpers/distribution.js";
import { tempDir } from "../test/helpers/registry.js";
import { makeBlobFile, MiB, pushBlob } from "./load.js";
import { Spool } from "../src/proxy/spool.js";
import { BlobFill } from "../src/proxy/blob-fill.js";
import type { Digest } from "../src/registry/digest.js";
const work = await tempDir("mp-");
const blob = await makeBlobFile(join(work, "blob"), 256 * MiB);
await mkdir(join(work, "d"));
const peer = await startDistribution({ root: join(work, "d"), secret: "b", configDir: work });
await pushBlob(peer.url, "bench/push0", blob);
const agent = new Agent({});
for (let i = 0; i < 3; i++) {
  const t = Date.now();
  const res = await request(`${peer.url}/v2/bench/push0/blobs/${blob.digest}`, { dispatcher: agent });
  const fill = new BlobFill({ digest: blob.digest as Digest, size: blob.size, body: res.body }, await Spool.create(work), undefined, pino({ level: "silent" }));
  let n = 0, reads = 0;
  for await (const c of fill.reader(0, blob.size)!) { n += (c as Buffer).length; reads++; }
  console.log("fill+read", (n / MiB / ((Date.now() - t) / 1000)).toFixed(0), "MiB/s", reads, "reads");
  await fill.done;
}
await peer.stop();
