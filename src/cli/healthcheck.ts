import { http as plainHttp, https } from "../builtins.js";
import type { HttpConfig } from "../config/config.js";
import { listenAddress } from "../config/listen-address.js";
import { commandArgs } from "./args.js";
import { loadOrReport } from "./config-file.js";
import { usageError } from "./help.js";

const TIMEOUT_MS = 3000;

/** Where this machine reaches the registry a configuration serves: loopback for a wildcard address. */
function healthTarget(http: HttpConfig): { socketPath: string } | { host: string; port: number } {
  if (http.net === "unix") return { socketPath: http.addr };
  const { host, port } = listenAddress(http.addr);
  return { host: host === undefined || host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host, port };
}

/** `lain-registry healthcheck [config.yml]`: GET /health of the local instance; exit 0 when it answers 200. */
export async function healthcheckCommand(args: string[]): Promise<number> {
  const parsed = commandArgs(args, {});
  if (typeof parsed === "string") return usageError("healthcheck", parsed);
  const loaded = await loadOrReport(parsed.config);
  if (!loaded) return 2;
  const { http } = loaded.config;
  const request = http.tls ? https().request : plainHttp.request;
  const outcome = await new Promise<string | undefined>((resolve) => {
    // Liveness of our own listener, not its identity: the certificate names the public host.
    const req = request({ ...healthTarget(http), path: `${http.prefix}/health`, timeout: TIMEOUT_MS, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? undefined : `answered ${res.statusCode}`);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on("error", (err) => resolve(err.message));
    req.end();
  });
  if (outcome === undefined) return 0;
  process.stderr.write(`unhealthy: ${outcome}\n`);
  return 1;
}
