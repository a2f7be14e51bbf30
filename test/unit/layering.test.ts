import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "../../src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

const FILES = sources(SRC).map((path) => ({ path: relative(SRC, path), text: readFileSync(path, "utf8") }));

function importsOf(text: string): string[] {
  return [...text.matchAll(/(?:from|import\()\s*"([^"]+)"/g)].map((m) => m[1] ?? "");
}

/** The folder of src/ an import of `file` lands in, for relative imports. */
function folderOf(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const target = relative(SRC, resolve(SRC, file, "..", specifier));
  return target.includes("/") ? target.slice(0, target.indexOf("/")) : "";
}

describe("dependencies point one way (docs/design/architecture.md)", () => {
  it("reads the sources", () => {
    expect(FILES.length).toBeGreaterThan(100);
  });

  it("no driver imports anything image-aware or the configuration", () => {
    const wrong = FILES.filter((f) => f.path.startsWith("storage/")).flatMap((f) =>
      importsOf(f.text)
        .filter((s) => ["registry", "config", "proxy", "http", "gc", "cli"].includes(folderOf(f.path, s) ?? ""))
        .map((s) => `${f.path} imports ${s}`),
    );
    expect(wrong).toEqual([]);
  });

  it("the domain imports neither HTTP, the mirror, the collector nor the configuration", () => {
    const wrong = FILES.filter((f) => f.path.startsWith("registry/")).flatMap((f) =>
      importsOf(f.text)
        .filter((s) => ["http", "proxy", "gc", "config", "cli", "cluster"].includes(folderOf(f.path, s) ?? ""))
        .map((s) => `${f.path} imports ${s}`),
    );
    expect(wrong).toEqual([]);
  });

  it("the etcd client depends on no other folder of src/", () => {
    const wrong = FILES.filter((f) => f.path.startsWith("etcd/")).flatMap((f) =>
      importsOf(f.text)
        .filter((s) => {
          const folder = folderOf(f.path, s);
          return folder !== undefined && folder !== "" && !f.path.startsWith(`${folder}/`);
        })
        .map((s) => `${f.path} imports ${s}`),
    );
    expect(wrong).toEqual([]);
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
    const wrong = FILES.filter((f) => f.path.startsWith("http/")).flatMap((f) => importsOf(f.text).filter((s) => folderOf(f.path, s) === "gc").map((s) => `${f.path} imports ${s}`));
    expect(wrong).toEqual([]);
  });
});
