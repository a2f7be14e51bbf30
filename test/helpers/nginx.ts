import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

const TEMP_DIRS = ["body", "proxy", "fastcgi", "uwsgi", "scgi"];

/**
 * An nginx configuration as the webrouter has it: the project's snippet (config/nginx/
 * registry.conf) in a server on `listen`, with the upstream block nginx includes from `upstreams`.
 * Everything nginx writes stays in `work`. Returns the configuration's path.
 */
export async function writeNginxConfig(work: string, listen: string, upstreams: string): Promise<string> {
  const conf = join(work, "nginx.conf");
  for (const dir of TEMP_DIRS) await mkdir(join(work, dir), { recursive: true });
  const snippet = await readFile(new URL("../../config/nginx/registry.conf", import.meta.url), "utf8");
  await writeFile(
    conf,
    [
      "worker_processes 1;",
      `pid ${join(work, "nginx.pid")};`,
      `error_log ${join(work, "nginx-error.log")} warn;`,
      "events {}",
      "http {",
      "  access_log off;",
      ...TEMP_DIRS.map((d) => `  ${d === "body" ? "client_body" : d}_temp_path ${join(work, d)};`),
      `  include ${upstreams};`,
      "  server {",
      `    listen ${listen};`,
      snippet.replace(/^/gm, "    "),
      "  }",
      "}",
    ].join("\n"),
  );
  return conf;
}

export function startNginx(conf: string): ChildProcess {
  return spawn("nginx", ["-c", conf, "-g", "daemon off;"], { stdio: "ignore" });
}
