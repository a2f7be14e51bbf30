import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url);
const text = (path: string) => readFile(new URL(path, root), "utf8");

describe("launchers", () => {
  it("npm start, the bin and the unit go through the launcher; the Dockerfile starts node with the flags of main.js's first line", async () => {
    const shebang = (await text("src/cli/main.ts")).split("\n", 1)[0]!;
    expect(shebang).toMatch(/^#!\/usr\/bin\/env -S node /);
    const flags = shebang.split(/\s+/).slice(3);
    expect(flags).toContain("--max-semi-space-size=8");
    expect(flags).toContain("--min-semi-space-size=8");

    const pkg = JSON.parse(await text("package.json")) as { scripts: { start: string }; bin: Record<string, string> };
    // The launcher reads the flags off that first line (launcher/lain-registry.js).
    expect(pkg.scripts.start).toBe("node launcher/lain-registry.js serve config/config.yml");
    expect(pkg.bin["lain-registry"]).toBe("launcher/lain-registry.js");
    expect(await text("config/systemd/lain-registry.service")).toMatch(/^ExecStart=\/opt\/lain-registry\/bin\/node \/opt\/lain-registry\/lib\/node_modules\/lain-registry\/launcher\/lain-registry\.js serve /m);

    const entrypoint = /^ENTRYPOINT (.*)$/m.exec(await text("Dockerfile"))?.[1];
    expect(JSON.parse(entrypoint ?? "null")).toEqual(["node", ...flags, "/opt/lain-registry/dist/cli/main.js"]);
  });
});
