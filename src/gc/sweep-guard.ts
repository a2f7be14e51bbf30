import { isPathNotFound, type StorageDriver } from "../storage/driver.js";
import { RegistryError } from "../registry/errors.js";
import { gcPaths } from "./paths.js";

/** A marker not refreshed for this long is a leftover of a collector that died. */
export const MARKER_STALE_MS = 5 * 60_000;

/** Whether a garbage collector of an earlier version (which raises a store-wide marker) is sweeping now. */
export async function sweepInProgress(driver: StorageDriver, now = Date.now()): Promise<boolean> {
  try {
    const info = await driver.stat(gcPaths.sweepMarker);
    return now - info.modTime.getTime() < MARKER_STALE_MS;
  } catch (err) {
    if (isPathNotFound(err)) return false;
    throw err;
  }
}

/**
 * Refuses, retryably, what could make a blob such a collector is about to delete referenced
 * again (a manifest put, a mount), as it expects: a fleet being upgraded stays safe. Collectors
 * of this version raise no marker (collection-guard.ts).
 */
export async function refuseDuringSweep(driver: StorageDriver): Promise<void> {
  if (await sweepInProgress(driver)) {
    throw new RegistryError("UNAVAILABLE", "garbage collection is sweeping this store; retry in a few seconds");
  }
}
