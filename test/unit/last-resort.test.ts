import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const module = new URL("../../dist/cli/last-resort.js", import.meta.url).pathname;

describe("the last resort against unhandled errors", () => {
  it.each(["throw new Error('boom')", "Promise.reject(new Error('boom'))"])("logs %s as a fatal line, flushed, and exits 1 instead of serving on", async (fault) => {
    const script = [
      `import { pino } from "pino";`,
      `import { exitOnUnhandled } from ${JSON.stringify(module)};`,
      // The server's own destination: batched, asynchronous writes.
      `exitOnUnhandled(pino(pino.destination({ dest: 2, sync: false, minLength: 4096 })));`,
      `setTimeout(() => { ${fault}; }, 10);`,
      `setTimeout(() => console.log("still serving"), 1000);`,
    ].join("\n");
    const result = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], { cwd: new URL("../..", import.meta.url).pathname }).then(
      () => ({ code: 0, stdout: "", stderr: "" }),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    expect(result.code).toBe(1);
    expect(result.stdout).not.toContain("still serving");
    const line = JSON.parse(result.stderr.trim().split("\n").pop()!) as { level: number; msg: string; err: { message: string } };
    expect(line.level).toBe(60);
    expect(line.msg).toMatch(/this is a bug of lain-registry; exiting/);
    expect(line.err.message).toBe("boom");
  });
});
