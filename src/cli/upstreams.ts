import { createLogger } from "../log.js";
import { commandArgs } from "./args.js";
import { loadOrReport } from "./config-file.js";
import { usageError } from "./help.js";

/**
 * `lain-registry upstreams`: keeps an nginx upstream file in step with the instances registered
 * in etcd (the config's `etcd` section and `cluster.prefix`), until SIGTERM or SIGINT.
 */
export async function upstreamsCommand(args: string[]): Promise<number> {
  const parsed = commandArgs(args, { out: { type: "string" }, reload: { type: "string" }, name: { type: "string" } });
  if (typeof parsed === "string") return usageError("upstreams", parsed);
  const { out, reload, name } = parsed.values as { out?: string; reload?: string; name?: string };
  if (!out) return usageError("upstreams", "--out is required");
  const path = parsed.config;
  const loaded = await loadOrReport(path);
  if (!loaded) return 2;
  const { config } = loaded;
  if (!config.etcd) {
    process.stderr.write(`${path} has no etcd section: the registrations live in etcd\n`);
    return 2;
  }
  const { UpstreamFile } = await import("../cluster/upstreams.js");
  const file = new UpstreamFile({
    etcd: config.etcd,
    prefix: config.cluster?.prefix ?? "/lain/registry/instances",
    out,
    name: name ?? "registry",
    reload,
    log: createLogger(config),
  });
  file.start();
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  await file.stop();
  return 0;
}
