import { VERSION } from "../version.js";

/** One subcommand: how it is called and what it does, for `--help` and usage errors. */
export interface CommandHelp {
  /** As typed: "serve", "config check", ... */
  name: string;
  synopsis: string;
  summary: string;
  /** Options and behaviour, shown by `lain-registry NAME --help`. */
  details: string;
}

export const COMMANDS: readonly CommandHelp[] = [
  {
    name: "serve",
    synopsis: "lain-registry serve [config.yml]",
    summary: "serve the registry (default config: the package's config/config.yml, storing in ./data of the working directory)",
    details: `Serves the registry (or mirror, with a proxy section) until SIGTERM or SIGINT, then drains:
withdraws its etcd registration, refuses new upload sessions, lets requests in flight finish
within cluster.drain (or http.draintimeout) and exits 0. Without config.yml it serves the quick
start's configuration, whose store is ./data under the directory serve is started in (not
/var/lib/registry, distribution's default for a configuration without a rootdirectory); the
start line names the configuration file and the store's absolute path.
Exit 2 if the configuration is refused (each problem as config error: <key>: <why>, as config
check names it): a restart cannot help. Exit 1 when what it needs is not there yet (the store
does not answer, the port is held, the address is not up yet) or after logging an uncaught
error (a bug): a supervisor starts it again (config/systemd restarts on 1, never on 2).`,
  },
  {
    name: "config check",
    synopsis: "lain-registry config check [--connect] [config.yml]",
    summary: "validate a configuration without starting",
    details: `Lists every problem by key path (errors and warnings for keys not implemented yet), and
prepares on this machine what serve would: listen addresses, TLS, auth and etcd files, the
directories it writes to (never creating one: it says serve will), the storage driver's settings.
What it refuses, serve refuses with the same line; what it accepts, serve serves.
  --connect   also reach the storage (bucket, credentials) and the proxy.remoteurl peer
Exit 0 usable (warnings allowed), 1 with problems.`,
  },
  {
    name: "mirror prefetch",
    synopsis: "lain-registry mirror prefetch [config.yml] name:tag|name@digest ...",
    summary: "fetch images from the proxy.remoteurl peer into the store",
    details: `Fetches each image (every platform of an index) into the mirror's store; safe while the
mirror serves. One line per reference; on a terminal, progress on stderr.
Exit 0 every reference cached, 1 one or more failed, 2 usage error.`,
  },
  {
    name: "mirror writeback",
    synopsis: "lain-registry mirror writeback [config.yml] [--replay]",
    summary: "show a standby's journal of pushes taken while its peer was down; replay it",
    details: `Lists the writes a standby (proxy.pushes: writeback) took while its peer did not answer, oldest
first, and those the replay decided against (a conflict: the peer's tag was kept; dropped: the peer
refused the write). The server replays on its own once the peer answers; safe beside it.
  --replay    replay the journal to the peer now, in push order
Exit 0 shown (with --replay: nothing left), 1 entries left or a file unreadable, 2 usage or configuration error.`,
  },
  {
    name: "upstreams",
    synopsis: "lain-registry upstreams [config.yml] --out FILE [--reload CMD] [--name registry]",
    summary: "keep an nginx upstream file in step with the instances in etcd",
    details: `Watches cluster.prefix in etcd; writes FILE (temp file + rename) when the instances change and
runs CMD (e.g. 'nginx -s reload'). Keeps the last file while etcd is down. Runs until SIGTERM.
  --name      the upstream block's name (default registry)
Exit 0 on SIGTERM, 2 usage or configuration error.`,
  },
  {
    name: "garbage-collect",
    synopsis: "lain-registry garbage-collect [config.yml] [--dry-run] [--delete-untagged] [--delay 1h]",
    summary: "remove unreferenced blobs; safe while the registry serves",
    details: `Marks what manifests reference and deletes the rest, as distribution's garbage-collect does.
  --dry-run          report only
  --delete-untagged  also delete manifests no tag reaches (and their blobs)
  --delay D          never delete blobs younger than D (default storage.gc.delay, 1h)
Progress on stderr when it is a terminal. Exit 0 done, 1 failed, 2 usage or configuration error.`,
  },
  {
    name: "retention",
    synopsis: "lain-registry retention [config.yml] [--dry-run]",
    summary: "remove the tags and manifests storage.retention's rules do not keep",
    details: `Applies storage.retention's rules now, through the registry as API DELETEs would (events
included); a later garbage collection frees the blobs. Safe while the registry serves: a tag pushed
during the run stays. One line per tag (kept, with the rule that keeps it, or removed) and manifest.
  --dry-run   list what would go and which rule keeps each survivor
Exit 0 done, 2 usage or configuration error.`,
  },
  {
    name: "scrub",
    synopsis: "lain-registry scrub [config.yml] [--dry-run] [--rate MiB/s] [--repair] [--peer URL]",
    summary: "check every blob against its digest and every manifest, tag and link; quarantine damage",
    details: `Hashes every blob, and checks every manifest's references (present, with the sizes it gives),
every tag's and _layers link's target. Reports each problem with its repository and tags. A blob
whose bytes do not match its digest is moved aside (GET and HEAD then answer 404). Safe while the
registry serves.
  --dry-run   report only
  --rate R    read blobs at most R MiB/s
  --repair    fetch damaged and missing blobs again from proxy.remoteurl, checked before use
  --peer URL  fetch them from this registry instead (implies --repair)
Exit 0 nothing wrong (or all repaired), 1 problems left, 2 usage or configuration error.`,
  },
  {
    name: "token issue",
    synopsis: "lain-registry token issue --key KEY.pem --issuer I --service S --sub WHO --scope repository:NAME:pull,push [--ttl 1h]",
    summary: "print a signed registry token (for installs without an auth server)",
    details: `Prints a token signed with the private key whose certificate is in auth.token.rootcertbundle.
--scope may repeat. Exit 0 printed, 2 usage error or unreadable key.`,
  },
  {
    name: "healthcheck",
    synopsis: "lain-registry healthcheck [config.yml]",
    summary: "ask the registry this configuration serves for GET /health (the image's HEALTHCHECK)",
    details: `Reads http.addr, http.prefix and http.tls from the configuration (REGISTRY_* overrides
included) and asks 127.0.0.1 (or the unix socket) for /health within 3 s.
Exit 0 healthy, 1 unhealthy or unreachable, 2 configuration error.`,
  },
];

export const USAGE = `lain-registry ${VERSION}: an OCI / Docker registry and pull-through mirror

Usage:
${COMMANDS.map((c) => `  ${c.synopsis}\n      ${c.summary}`).join("\n")}
  lain-registry --version
  lain-registry --help | COMMAND --help

Every command that reads a configuration takes it as config.yml or as --config config.yml
(without either: the package's config/config.yml, the quick start's, whose store is ./data under
the working directory). REGISTRY_* environment variables override
configuration keys as in distribution,
e.g. REGISTRY_HTTP_ADDR=:5000 REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry.

Exit codes: 0 success; 1 the command ran and failed (problems found, a reference not prefetched,
collection failed, unhealthy; serve: what it needs is not there yet); 2 usage error or a
configuration the command refuses.
`;

export function commandHelp(command: CommandHelp): string {
  return `Usage: ${command.synopsis}\n${command.summary}\n\n${command.details}\n`;
}

/** Writes the command's synopsis to stderr (after a reason, if any); returns exit code 2. */
export function usageError(name: string, reason?: string): number {
  const command = COMMANDS.find((c) => c.name === name);
  process.stderr.write(`${reason ? `${reason}\n` : ""}usage: ${command?.synopsis ?? `lain-registry ${name}`}\n`);
  return 2;
}
