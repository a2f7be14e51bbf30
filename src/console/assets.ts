import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { PACKAGE_ROOT } from "../package-root.js";

/** The console's static files, shipped in the package's ui/ folder (no CDN: registries run offline). */
export const UI_DIR = join(PACKAGE_ROOT, "ui");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** Reads every file of the folder once, at start: a few kilobytes, served from memory. */
export async function loadAssets(dir = UI_DIR): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  for (const name of await readdir(dir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const body = await readFile(join(dir, name));
    assets.set(name, { body, type, etag: `"${createHash("sha256").update(body).digest("hex").slice(0, 16)}"` });
  }
  return assets;
}
