import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { parseConfig } from "../../src/config/load.js";
import { startRegistry } from "../../src/cli/serve.js";
import type { AppContext } from "../../src/http/context.js";
import { startServer, type ConnectionLimits } from "../../src/http/server.js";
import { Metrics } from "../../src/metrics/metrics.js";
import { Registry } from "../../src/registry/registry.js";
import type { StorageDriver } from "../../src/storage/driver.js";

export interface TestRegistry {
  url: string;
  /** host:port, as image references need it */
  host: string;
  /** The filesystem rootdirectory (absent with inmemory storage). */
  root: string | undefined;
  close(): Promise<void>;
}

export interface TestRegistryOptions {
  storage?: "filesystem" | "inmemory";
  /** A storage driver section in YAML (e.g. an s3 section), instead of `storage`. */
  storageYaml?: string;
  deleteEnabled?: boolean;
  /** An existing rootdirectory to serve (kept on close). */
  root?: string;
  /** Extra YAML appended to the configuration. */
  extraYaml?: string;
  /** Short connection timeouts, for tests of slow clients. */
  limits?: ConnectionLimits;
  /** http.addr; default a free port of 127.0.0.1. */
  addr?: string;
  /** Receives each line the registry logs (at info and above), for a test that waits for one. */
  logLines?: string[];
}

export async function tempDir(prefix = "lain-registry-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A registry in this process on a free port of 127.0.0.1, with its own temporary store. */
export async function startTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const storage = options.storage ?? "filesystem";
  const ownRoot = storage === "filesystem" && !options.root && !options.storageYaml ? await tempDir() : undefined;
  const root = options.root ?? ownRoot;
  const yaml = [
    "version: 0.1",
    "storage:",
    options.storageYaml ?? (storage === "filesystem" ? `  filesystem:\n    rootdirectory: ${root}` : "  inmemory: {}"),
    `  delete:\n    enabled: ${options.deleteEnabled ?? true}`,
    "http:",
    `  addr: ${options.addr ?? "127.0.0.1:0"}`,
    "  secret: test-secret",
    options.extraYaml ?? "",
  ].join("\n");
  const loaded = parseConfig(yaml, {});
  if (!loaded.ok) throw new Error(`test config invalid: ${JSON.stringify(loaded.errors)}`);
  // LAIN_TEST_LOG=debug shows what a test's registry logs.
  const { logLines } = options;
  const log = logLines ? pino({ level: "info" }, { write: (line: string) => void logLines.push(line) }) : pino({ level: process.env.LAIN_TEST_LOG ?? "silent" });
  const running = await startRegistry(loaded.config, log, options.limits);
  return {
    url: running.url,
    host: running.url.replace(/^https?:\/\//, ""),
    root,
    async close() {
      await running.close();
      if (ownRoot) await rm(ownRoot, { recursive: true, force: true });
    },
  };
}

/**
 * A registry in this process over a driver of the test's own (one that fails on purpose, say),
 * with the HTTP layer as serve wires it (deletes on).
 */
export async function serveDriver(driver: StorageDriver): Promise<{ url: string; registry: Registry; close(): Promise<void> }> {
  const loaded = parseConfig("version: 0.1\nstorage: {inmemory: {}, delete: {enabled: true}}\nhttp: {addr: 127.0.0.1:0, secret: test-secret}", {});
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const { config } = loaded;
  const registry = new Registry(driver);
  const app: AppContext = {
    registry,
    settings: { http: config.http, storage: config.storage, catalogMaxEntries: config.catalog.maxEntries },
    access: { readOnly: { enabled: false } },
    telemetry: { log: pino({ level: process.env.LAIN_TEST_LOG ?? "silent" }), accessLog: true, metrics: new Metrics() },
    lifecycle: { draining: false },
  };
  const running = await startServer(app);
  return {
    url: running.url,
    registry,
    close: async () => {
      await running.close();
      await registry.close();
    },
  };
}
