import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { filesUnder } from "../helpers/files.js";

const ROOT = resolve(import.meta.dirname, "../..");

/** Lines outside fenced code blocks. */
function prose(text: string): string[] {
  let fenced = false;
  return text.split("\n").filter((line) => {
    if (line.startsWith("```")) fenced = !fenced;
    return !fenced && !line.startsWith("```");
  });
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, "")
    .replace(/ /g, "-");
}

function anchorsOf(file: string): Set<string> {
  const headings = prose(readFileSync(file, "utf8")).flatMap((line) => /^#{1,6} (.*)$/.exec(line)?.[1] ?? []);
  return new Set(headings.map(anchor));
}

/** Every relative link target (`[text](target)`) of a markdown file, outside code. */
function links(file: string): string[] {
  return prose(readFileSync(file, "utf8")).flatMap((line) =>
    [...line.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] ?? "").filter((target) => !/^[a-z]+:/.test(target)),
  );
}

const FILES = [join(ROOT, "README.md"), ...filesUnder(join(ROOT, "docs"), ".md")];

describe("the documentation's links", () => {
  it("finds the README and the docs it links to", () => {
    expect(FILES.length).toBeGreaterThan(10);
    expect(existsSync(join(ROOT, "docs/design/architecture.md"))).toBe(true);
    expect(existsSync(join(ROOT, "docs/design/gc-safety.md"))).toBe(true);
  });

  it.each(FILES.map((file) => [relative(ROOT, file), file]))("every relative link of %s resolves, anchors included", (_name, file) => {
    const broken: string[] = [];
    for (const target of links(file)) {
      const [path = "", fragment] = target.split("#");
      const resolved = path === "" ? file : resolve(dirname(file), decodeURIComponent(path));
      if (!existsSync(resolved)) {
        broken.push(`${target}: no such file`);
        continue;
      }
      if (fragment !== undefined && statSync(resolved).isFile() && resolved.endsWith(".md") && !anchorsOf(resolved).has(fragment)) {
        broken.push(`${target}: no such heading`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("the README stays an entry point (at most about 300 lines)", () => {
    expect(readFileSync(join(ROOT, "README.md"), "utf8").split("\n").length).toBeLessThanOrEqual(320);
  });
});
