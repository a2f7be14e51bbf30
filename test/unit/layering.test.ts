import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { filesUnder } from "../helpers/files.js";

const SRC = resolve(import.meta.dirname, "../../src");

const FILES = filesUnder(SRC, ".ts").map((path) => ({ path: relative(SRC, path), text: readFileSync(path, "utf8") }));

function importsOf(text: string): string[] {
  return [...text.matchAll(/(?:from|import\()\s*"([^"]+)"/g)].map((m) => m[1] ?? "");
}

/** The folder of src/ an import of `file` lands in, for relative imports ("" for a file at src/'s top). */
function folderOf(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const target = relative(SRC, resolve(SRC, file, "..", specifier));
  return target.includes("/") ? target.slice(0, target.indexOf("/")) : "";
}

/** Imports by the files under `folder` ("storage/") that land in a folder `forbidden` names (`file`: the importer). */
function crossings(folder: string, forbidden: (target: string, file: string) => boolean): string[] {
  return FILES.filter((f) => f.path.startsWith(folder)).flatMap((f) =>
    importsOf(f.text)
      .filter((s) => {
        const target = folderOf(f.path, s);
        return target !== undefined && forbidden(target, f.path);
      })
      .map((s) => `${f.path} imports ${s}`),
  );
}

const among = (folders: string[]) => (target: string) => folders.includes(target);

describe("dependencies point one way (docs/design/architecture.md)", () => {
  it("reads the sources", () => {
    expect(FILES.length).toBeGreaterThan(100);
  });

  it("no driver imports anything image-aware or the configuration", () => {
    expect(crossings("storage/", among(["registry", "config", "proxy", "http", "gc", "cli"]))).toEqual([]);
  });

  it("the domain imports neither HTTP, the mirror, the collector nor the configuration", () => {
    expect(crossings("registry/", among(["http", "proxy", "gc", "config", "cli", "cluster"]))).toEqual([]);
  });

  it("the etcd client depends on no other folder of src/", () => {
    expect(crossings("etcd/", (target, file) => target !== "" && !file.startsWith(`${target}/`))).toEqual([]);
  });

  it("nothing extends Registry or Repository: the mirror composes", () => {
    expect(FILES.filter((f) => /extends (Registry|Repository|StoredRepository)\b/.test(f.text)).map((f) => f.path)).toEqual([]);
  });

  it("the collection protocol's vocabulary stays in src/gc/ (the domain sees the WriteBarrier port)", () => {
    const vocabulary = /\b(fence|tombstones?|rescue[ds]?|vouch(es)?|sweep(ing|s)?|collection guard|removal watch)\b/i;
    const outside = FILES.filter((f) => !f.path.startsWith("gc/") && vocabulary.test(f.text)).map((f) => `${f.path}: ${vocabulary.exec(f.text)?.[0]}`);
    expect(outside).toEqual([]);
  });

  it("no handler knows a collector exists", () => {
    expect(crossings("http/", among(["gc"]))).toEqual([]);
  });
});
