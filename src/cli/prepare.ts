import { lookup } from "node:dns/promises";
import { constants as fsConstants } from "node:fs";
import { access, lstat, mkdir, stat } from "node:fs/promises";
import { isIP } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { dirname, resolve } from "node:path";
import type { TlsOptions } from "node:tls";
import type { AccessController } from "../auth/authenticator.js";
import { ConfigError } from "../config/config-error.js";
import type { RegistryConfig } from "../config/config.js";
import { listenAddress } from "../config/listen-address.js";
import { DEFAULT_ROOT_DIRECTORY } from "../config/schema.js";
import type { Findings } from "../config/validate.js";
import type { Asset } from "../console/assets.js";
import type { StorageDriver } from "../storage/driver.js";
import { createDriver } from "../storage/factory.js";
import { authFromFile } from "./auth-setup.js";

/** What `serve` builds from a configuration before it listens. */
export interface Prepared {
  driver: StorageDriver;
  /** The file's authentication; undefined: the registry is open. */
  auth: AccessController | undefined;
  /** The HTTPS server's options, with http.tls. */
  tls: TlsOptions | undefined;
  consoleAssets: Map<string, Asset> | undefined;
}

/**
 * "serve" creates the directories it writes to (the store's root, the mirror's spool);
 * "check" (`config check`) changes nothing on disk and says what serve would create.
 */
export type PrepareMode = "serve" | "check";

/**
 * Builds, from a configuration validation accepted, everything serve needs that can fail on
 * this machine: its listen addresses, TLS files, auth files, directories, storage driver, etcd
 * files and console files. `config check` runs exactly this too, so the two agree: whatever
 * serve would refuse is an error here, by key path, and what passes here serve serves.
 */
export async function prepare(config: RegistryConfig, mode: PrepareMode): Promise<{ prepared: Prepared | undefined; findings: Findings }> {
  const findings: Findings = { errors: [], warnings: [] };
  const attempt = async <T>(section: string, build: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await build();
    } catch (err) {
      findings.errors.push(err instanceof ConfigError ? { path: err.path, message: err.message } : { path: section, message: (err as Error).message });
      return undefined;
    }
  };
  const { http, storage } = config;
  if (http.net === "unix") await attempt("http.addr", () => checkSocketPath("http.addr", http.addr));
  else await attempt("http.addr", async () => refuseOpenMirror(config, await checkTcpAddress("http.addr", http.addr)));
  for (const [key, addr] of [["http.debug.addr", config.debug.addr], ["proxy.siblings.addr", siblingsAddr(config)]] as const) {
    if (addr !== undefined) await attempt(key, () => checkTcpAddress(key, addr));
  }
  const tlsConfig = http.tls;
  // node:tls loads only where TLS is served.
  const tls = tlsConfig ? await attempt("http.tls", async () => (await import("../http/tls.js")).tlsServerOptions(tlsConfig)) : undefined;
  if (storage.driver === "filesystem") {
    const root = storage.parameters.rootdirectory;
    const path = resolve(typeof root === "string" && root !== "" ? root : DEFAULT_ROOT_DIRECTORY);
    await attempt("storage.filesystem.rootdirectory", () => directory(path, "storage.filesystem.rootdirectory", mode, findings));
  }
  if (config.proxy) {
    const spool = resolve(config.proxy.spoolDir ?? tmpdir());
    await attempt("proxy.spooldir", () => directory(spool, "proxy.spooldir", mode, findings));
  }
  const driver = await attempt(`storage.${storage.driver}`, () => createDriver(storage));
  const auth = await attempt("auth", () => authFromFile(config.auth));
  if (auth?.kind === "htpasswd" && auth.userCount === 0) {
    findings.warnings.push({ path: "auth.htpasswd.path", message: `${auth.config.path} has no bcrypt entry: nobody can log in (htpasswd -B adds one)` });
  }
  if (config.etcd) {
    const etcd = config.etcd;
    // etcd3 (and gRPC) load only for an etcd section.
    await attempt("etcd", async () => (await import("../config/etcd-key.js")).etcdClientOptions(etcd));
  }
  const consoleAssets = config.console.enabled ? await attempt("console", () => consoleFiles()) : undefined;
  if (findings.errors.length > 0 || !driver) return { prepared: undefined, findings };
  return { prepared: { driver, auth, tls, consoleAssets }, findings };
}

async function consoleFiles(): Promise<Map<string, Asset>> {
  const assets = await (await import("../console/assets.js")).loadAssets().catch(() => undefined);
  if (!assets?.has("index.html")) throw new ConfigError("console.enabled", "the web console's files (ui/) are missing from this installation");
  return assets;
}

/** A directory the registry writes to: there and writable, or made (serve) or makeable (check). */
async function directory(path: string, key: string, mode: PrepareMode, findings: Findings): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info) {
    if (!info.isDirectory()) throw new ConfigError(key, `${path} is not a directory`);
    await writable(path, key);
    return;
  }
  // The same diagnosis in both modes, so check and serve say the same thing.
  let ancestor = dirname(path);
  while (!(await stat(ancestor).catch(() => undefined))) ancestor = dirname(ancestor);
  if (!(await stat(ancestor)).isDirectory()) throw new ConfigError(key, `${path} cannot be created: ${ancestor} is not a directory`);
  await writable(ancestor, key, `${path} cannot be created: `);
  if (mode === "check") {
    findings.warnings.push({ path: key, message: `${path} does not exist yet; serve will create it` });
    return;
  }
  await mkdir(path, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(key, `${path} cannot be created: ${err.code ?? err.message}`);
  });
}

async function writable(path: string, key: string, prefix = ""): Promise<void> {
  await access(path, fsConstants.W_OK | fsConstants.X_OK).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(key, `${prefix}${path} is not writable (${err.code ?? err.message})`);
  });
}

/** A unix socket path: its directory writable, and nothing but a (stale) socket in its place. */
async function checkSocketPath(key: string, path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info && !info.isSocket()) throw new ConfigError(key, `${path} exists and is not a socket`);
  await writable(dirname(resolve(path)), key);
}

/** proxy.siblings.addr, when the siblings' listener is served. */
function siblingsAddr({ proxy }: RegistryConfig): string | undefined {
  return proxy?.siblings.enabled ? proxy.siblings.addr : undefined;
}

function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (address === "::1" || /^(::ffff:)?127\./.test(address));
}

/**
 * A mirror's users' listener that the network reaches, with nobody asked who they are, reads
 * everything proxy.username may read from the peer for anyone (distribution's #1899). Said on
 * purpose (proxy.unauthenticated), or answered by an auth section or client certificates.
 */
function refuseOpenMirror(config: RegistryConfig, address: string | undefined): void {
  const { proxy, auth, http } = config;
  if (!proxy || proxy.unauthenticated || isLoopback(address) || auth.token || auth.htpasswd || (http.tls?.clientCas.length ?? 0) > 0) return;
  const siblings = proxy.siblings.enabled && !proxy.siblings.addr ? "; sibling mirrors get a listener of their own with proxy.siblings.addr" : "";
  throw new ConfigError(
    "http.addr",
    `${http.addr} is reachable beyond this machine's loopback, and this mirror has no auth section: anyone who reaches it could read through it all that ${proxy.remoteUrls[0]} lets it read. ` +
      `Listen on 127.0.0.1${siblings}, add an auth section, or set proxy.unauthenticated: true to serve it so on purpose`,
  );
}

/**
 * Where a host:port would be listened on: a name that resolves to an address of this machine.
 * Answers that address; undefined for every interface.
 */
async function checkTcpAddress(key: string, addr: string): Promise<string | undefined> {
  const { host } = listenAddress(addr);
  if (host === undefined) return undefined;
  const address = isIP(host) ? host : await lookup(host).then(
    (found) => found.address,
    (err: NodeJS.ErrnoException) => {
      throw new ConfigError(key, `${addr}: the host ${host} does not resolve (${err.code ?? err.message})`);
    },
  );
  if (!isLocalAddress(address)) throw new ConfigError(key, `${addr}: ${address} is not an address of this machine`);
  return address === "0.0.0.0" || address === "::" ? undefined : address;
}

function isLocalAddress(address: string): boolean {
  if (address === "0.0.0.0" || address === "::" || address === "::1" || address.startsWith("127.")) return true;
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((i) => i.address === address || i.address === address.replace(/%.*$/, "")));
}
