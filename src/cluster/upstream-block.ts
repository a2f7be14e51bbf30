import type { Registration } from "./announce.js";

/**
 * The nginx upstream block for the registered instances: primaries as servers, mirrors as
 * backups (nginx sends to them only when every primary has failed). With no primary, the
 * mirrors serve as the servers. Sorted, so the same instances always give the same text.
 */
export function renderUpstream(name: string, registrations: Registration[]): string | undefined {
  const hosts = (role: Registration["role"]) => [...new Set(registrations.filter((r) => r.role === role).map((r) => new URL(r.address).host))].sort();
  const primaries = hosts("primary");
  const mirrors = hosts("mirror");
  if (primaries.length + mirrors.length === 0) return undefined;
  const lines = primaries.length > 0
    ? [...primaries.map((h) => `    server ${h} max_fails=1 fail_timeout=5s;`), ...mirrors.map((h) => `    server ${h} backup;`)]
    : mirrors.map((h) => `    server ${h} max_fails=1 fail_timeout=5s;`);
  return `# written by lain-registry upstreams from etcd; do not edit\nupstream ${name} {\n${lines.join("\n")}\n    keepalive 32;\n}\n`;
}
