import { execFileSync } from "node:child_process";
import { mkdir, rm, statfs, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** A small tmpfs at a new directory: a disk that fills up for real (mounting needs root, as in CI). */
export async function mountTmpfs(dir: string, size: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
}

export function unmount(dir: string): void {
  execFileSync("umount", [dir]);
}

/** Fills a mount to within `freeMiB` of its size; the returned function empties it again. */
export async function fillUp(dir: string, freeMiB: number): Promise<() => Promise<void>> {
  const { bavail, bsize } = await statfs(dir);
  const ballast = join(dir, "ballast");
  await writeFile(ballast, Buffer.alloc(Math.max(0, bavail * bsize - freeMiB * 1024 * 1024)));
  return () => rm(ballast, { force: true });
}
