// @ts-check
/**
 * The server as it runs: src/cli/main.ts and all it loads, bundled into dist/cli/main.js (its
 * first line, and the node flags on it, kept) and dist/cli/chunks/, each optional part (a
 * command, a storage driver, the mirror, the console) in chunks loaded when used. One bundle
 * instead of a hundred modules and their resolution took 10 MiB off a registry's idle resident
 * set (measured on Node 24). tsc still writes the modules one by one beside it, for the tests.
 *
 * Not bundled: the launcher's engines.js (read by an old Node too), pino-pretty (for a terminal
 * only), and the object-store and etcd clients, loaded when configured.
 */
import { rmSync } from "node:fs";
import { build } from "esbuild";

// Chunks are named by their content: those of an earlier build would pile up.
rmSync("dist/cli/chunks", { recursive: true, force: true });

await build({
  entryPoints: ["src/cli/main.ts"],
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22",
  outdir: "dist/cli",
  chunkNames: "chunks/[name]-[hash]",
  sourcemap: true,
  allowOverwrite: true,
  external: ["../../launcher/engines.js", "pino-pretty", "@aws-sdk/*", "@smithy/*", "ali-oss", "etcd3"],
  // The CommonJS libraries inside (pino) require Node's modules.
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  logLevel: "warning",
});
