import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Runs skopeo against plain-HTTP registries on 127.0.0.1, returning stdout. */
export async function skopeo(...args: string[]): Promise<string> {
  const [command, ...rest] = args;
  const tlsFlags: Record<string, string[]> = {
    copy: ["--src-tls-verify=false", "--dest-tls-verify=false"],
    inspect: ["--tls-verify=false"],
    delete: ["--tls-verify=false"],
    "list-tags": ["--tls-verify=false"],
  };
  const { stdout } = await run("skopeo", [command ?? "", ...(tlsFlags[command ?? ""] ?? []), ...rest], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  });
  return stdout;
}
