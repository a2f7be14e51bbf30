#!/usr/bin/env node
import { VERSION } from "../version.js";
import { configCheck } from "./config-check.js";
import { garbageCollectCommand } from "./garbage-collect.js";
import { mirrorCommand } from "./mirror.js";
import { serve } from "./serve.js";
import { upstreamsCommand } from "./upstreams.js";
import { tokenCommand } from "./token.js";

const USAGE = `lain-registry ${VERSION}: an OCI / Docker registry and pull-through mirror

Usage:
  lain-registry serve [config.yml]          serve the registry (default config: the package's config/config.yml)
  lain-registry config check [--connect] [config.yml]
                                            validate a configuration without starting;
                                            --connect also tries the storage (bucket, credentials)
  lain-registry mirror prefetch [--config config.yml] name:tag|name@digest ...
                                            fetch images from the proxy.remoteurl peer into the store
  lain-registry upstreams [config.yml] --out FILE [--reload CMD] [--name registry]
                                            keep an nginx upstream file in step with the instances in etcd
  lain-registry garbage-collect [config.yml] [--dry-run] [--delete-untagged] [--delay 1h] [--settle 5s]
                                            remove unreferenced blobs; safe while the registry serves
  lain-registry token issue --key KEY.pem --issuer I --service S --sub WHO --scope repository:NAME:pull,push [--ttl 1h]
                                            print a signed registry token (for installs without an auth server)
  lain-registry --version                   print the version
  lain-registry --help                      this text

REGISTRY_* environment variables override configuration keys as in distribution,
e.g. REGISTRY_HTTP_ADDR=:5000 REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry.

Exit codes: 0 success, 1 invalid configuration (config check) or a reference that could not be
prefetched (mirror prefetch), 2 usage error or refused configuration.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "--version":
    case "-v":
    case "version":
      process.stdout.write(`lain-registry ${VERSION}\n`);
      return 0;
    case undefined:
    case "--help":
    case "-h":
    case "help":
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    case "serve":
      return serve(rest[0]);
    case "config":
      if (rest[0] === "check") return configCheck(rest.slice(1));
      break;
    case "token":
      return tokenCommand(rest);
    case "mirror":
      return mirrorCommand(rest);
    case "upstreams":
      return upstreamsCommand(rest);
    case "garbage-collect":
      return garbageCollectCommand(rest);
  }
  process.stderr.write(`unknown command: ${argv.join(" ")}\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`lain-registry: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
