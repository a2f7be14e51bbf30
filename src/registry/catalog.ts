import { unlessMissing, type StorageDriver } from "../storage/driver.js";
import { layout } from "./layout.js";
import { isRepositoryName, type RepositoryName } from "./names.js";

/**
 * distribution's catalog order: path-aware, so "a" < "a/b" < "a-c" ("/" sorts before every
 * other character). Pagination with `last` relies on exactly this order.
 */
export function compareRepositoryNames(a: string, b: string): number {
  const x = a.replaceAll("/", "\0");
  const y = b.replaceAll("/", "\0");
  return x < y ? -1 : x > y ? 1 : 0;
}

export interface CatalogPage {
  repositories: RepositoryName[];
  /** More repositories follow the last one returned. */
  more: boolean;
}

/**
 * Lists repositories after `last`, at most `limit`, walking the store in order and skipping
 * subtrees that sort entirely before `last`. A repository is a directory holding `_layers`, as
 * distribution's catalog walk has it (one blob pushed or mounted, before any manifest), or
 * `_manifests` (a mirror may cache a manifest before its blobs).
 */
export async function listRepositories(driver: StorageDriver, limit: number, last?: string): Promise<CatalogPage> {
  const repositories: RepositoryName[] = [];
  for await (const name of walkRepositories(driver, "", last)) {
    if (repositories.length === limit) return { repositories, more: true };
    repositories.push(name);
  }
  return { repositories, more: false };
}

/** Directory listings started ahead of the walk: a store of thousands of repositories is a latency-bound tree walk. */
const LIST_AHEAD = 32;

function childNames(driver: StorageDriver, relative: string): Promise<string[]> {
  const dir = relative ? `${layout.repositoriesRoot}/${relative}` : layout.repositoriesRoot;
  const listing = unlessMissing(() => driver.list(dir)).then((paths) => (paths ?? []).map((p) => p.slice(p.lastIndexOf("/") + 1)));
  // Listed ahead and maybe never awaited (the page filled up): a failure must not go unhandled.
  listing.catch(() => undefined);
  return listing;
}

async function* walkRepositories(driver: StorageDriver, relative: string, last: string | undefined, listing = childNames(driver, relative)): AsyncGenerator<RepositoryName> {
  const children = await listing;
  if (relative && (children.includes("_layers") || children.includes("_manifests")) && isRepositoryName(relative)) {
    if (last === undefined || compareRepositoryNames(relative, last) > 0) yield relative;
  }
  const paths = children
    .filter((c) => !c.startsWith("_"))
    .sort()
    .map((child) => (relative ? `${relative}/${child}` : child))
    .filter((path) => last === undefined || compareRepositoryNames(path, last) >= 0 || last.startsWith(`${path}/`));
  const ahead: Promise<string[]>[] = [];
  for (const [i, path] of paths.entries()) {
    while (ahead.length < LIST_AHEAD && i + ahead.length < paths.length) ahead.push(childNames(driver, paths[i + ahead.length] as string));
    yield* walkRepositories(driver, path, last, ahead.shift());
  }
}
