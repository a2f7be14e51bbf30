import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url);
const text = (path: string) => readFile(new URL(path, root), "utf8");

describe("launchers", () => {
  it("npm start and the Dockerfile start node with the flags of the bin's first line", async () => {
    const shebang = (await text("src/cli/main.ts")).split("\n", 1)[0]!;
    expect(shebang).toMatch(/^#!\/usr\/bin\/env -S node /);
    const flags = shebang.split(/\s+/).slice(3);
    expect(flags).toContain("--max-semi-space-size=8");
    expect(flags).toContain("--min-semi-space-size=8");

    const start = (JSON.parse(await text("package.json")) as { scripts: { start: string } }).scripts.start;
    expect(start).toBe(`node ${flags.join(" ")} dist/cli/main.js serve config/config.yml`);

    const entrypoint = /^ENTRYPOINT (.*)$/m.exec(await text("Dockerfile"))?.[1];
    expect(JSON.parse(entrypoint ?? "null")).toEqual(["node", ...flags, "/opt/lain-registry/dist/cli/main.js"]);
  });
});
