import { DEFAULT_CONFIG_PATH } from "../config/load.js";
import { createLogger } from "../log.js";
import { loadOrReport } from "./config-file.js";
import { usageError } from "./help.js";


/**
 * `lain-registry upstreams`: keeps an nginx upstream file in step with the instances registered
 * in etcd (the config's `etcd` section and `cluster.prefix`), until SIGTERM or SIGINT.
 */
export async function upstreamsCommand(args: string[]): Promise<number> {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (["--out", "--reload", "--name"].includes(arg) && args[i + 1] !== undefined) flags.set(arg, args[++i] ?? "");
    else if (!arg.startsWith("--")) positional.push(arg);
    else {
      return usageError("upstreams", `unknown option ${arg}`);
    }
  }
  const out = flags.get("--out");
  if (!out || positional.length > 1) return usageError("upstreams");
  const path = positional[0] ?? DEFAULT_CONFIG_PATH;
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
    name: flags.get("--name") ?? "registry",
    reload: flags.get("--reload"),
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
