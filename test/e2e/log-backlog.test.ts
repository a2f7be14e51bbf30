import { spawn } from "node:child_process";
import { writeFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { Pool } from "undici";
import { describe, expect, it } from "vitest";
import { METRICS_ON_MAIN_PORT, sample } from "../helpers/metrics.js";
import { cliArgs, freePort, waitForRegistry } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";

const MiB = 1024 * 1024;
/** src/log.ts's bound on the lines waiting for stderr. */
const BACKLOG_BYTES = 8 * MiB;

describe("access log behind a stderr nobody reads", () => {
  // The soak of issue 34 grew by 38 MiB in 140 s: every access line waited in memory for a slow stderr.
  it("keeps at most its bounded backlog and counts each line it drops", async () => {
    const dir = await tempDir("lain-backlog-");
    const port = await freePort();
    const config = join(dir, "config.yml");
    await writeFile(config, ["version: 0.1", "log: {level: info, formatter: json}", `storage: {filesystem: {rootdirectory: ${join(dir, "store")}}}`, "http:", `  addr: 127.0.0.1:${port}`, "  secret: backlog", METRICS_ON_MAIN_PORT].join("\n"));
    const child = spawn(process.execPath, cliArgs("serve", config), { stdio: ["ignore", "ignore", "pipe"] });
    // Read nothing: the pipe fills and every later line waits in the registry, or is dropped.
    child.stderr.pause();
    const url = `http://127.0.0.1:${port}`;
    const pool = new Pool(url, { connections: 32 });
    try {
      await waitForRegistry(url, child, () => "");
      // ~300-byte access lines: about 12 MiB of them, half as much again as the backlog may hold.
      const requests = 40_000;
      let sent = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (sent < requests) {
            sent++;
            const reply = await pool.request({ method: "GET", path: "/v2/?load" });
            await reply.body.dump();
            expect(reply.statusCode).toBe(200);
          }
        }),
      );
      const metrics = await pool.request({ method: "GET", path: "/metrics" });
      const dropped = sample(await metrics.body.text(), "registry_log_lines_dropped_total");
      expect(dropped).toBeGreaterThan(0);

      // Everything that waited, read out once the registry stops.
      const chunks: Buffer[] = [];
      child.stderr.on("data", (chunk: Buffer) => chunks.push(chunk)).resume();
      const ended = new Promise((resolve) => child.stderr.once("end", resolve));
      child.kill("SIGTERM");
      await ended;
      const text = Buffer.concat(chunks).toString("utf8");
      const accessLines = text.split("\n").filter((line) => line.includes(`"http.request.uri":"/v2/?load"`)).length;
      // Each request is logged or counted as dropped (as are a few other lines: the warnings that lines were dropped).
      expect(accessLines).toBeLessThan(requests);
      expect(accessLines + dropped).toBeGreaterThanOrEqual(requests);
      expect(accessLines + dropped).toBeLessThan(requests + 100);
      // No more than the bound waited.
      expect(text.length).toBeLessThan(BACKLOG_BYTES + MiB);
    } finally {
      await pool.close();
      if (child.exitCode === null) child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });
});
