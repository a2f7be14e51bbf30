import { lookup } from "node:dns/promises";
import { constants as fsConstants } from "node:fs";
import { access, lstat, mkdir, mkdtemp, rmdir, stat } from "node:fs/promises";
import { isIP } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { TlsOptions } from "node:tls";
import type { AccessController } from "../auth/authenticator.js";
import { problemOf } from "../config/config-error.js";
import { ConfigError, NotYetAvailable } from "../refusal.js";
import { filesystemRoot, type RegistryConfig } from "../config/config.js";
import { probeListen } from "../http/listen.js";
import { listenAddress } from "../config/listen-address.js";
import type { Findings } from "../config/validate.js";
import type { Asset } from "../console/assets.js";
import type { StorageDriver } from "../storage/driver.js";
import { createDriver } from "../config/storage-driver.js";
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
      findings.errors.push(problemOf(err, section));
      return undefined;
    }
  };
  const { http, storage } = config;
  if (http.net === "unix") await attempt("http.addr", () => checkSocketPath("http.addr", http.addr));
  for (const [key, addr] of tcpListeners(config)) {
    await attempt(key, async () => {
      const address = await checkTcpAddress(key, addr);
      if (key === "http.addr") refuseOpenMirror(config, address);
    });
  }
  const tlsConfig = http.tls;
  // node:tls loads only where TLS is served.
  const tls = tlsConfig ? await attempt("http.tls", async () => (await import("../http/tls.js")).tlsServerOptions(tlsConfig)) : undefined;
  // Directories serve writes to and that do not exist yet: made only once nothing else is refused.
  const missing: Array<{ path: string; key: string }> = [];
  const directories = [
    ...(storage.driver === "filesystem" ? [{ path: filesystemRoot(storage), key: "storage.filesystem.rootdirectory" }] : []),
    ...(config.proxy ? [{ path: resolve(config.proxy.spoolDir ?? tmpdir()), key: "proxy.spooldir" }] : []),
  ];
  for (const { path, key } of directories) {
    if ((await attempt(key, () => directory(path, key))) === "missing") missing.push({ path, key });
  }
  if (mode === "check") for (const { path, key } of missing) findings.warnings.push({ path: key, message: `${path} does not exist yet; serve will create it` });
  const driver = await attempt(`storage.${storage.driver}`, () => createDriver(storage));
  const auth = await attempt("auth", () => authFromFile(config.auth));
  if (auth?.kind === "htpasswd") {
    // A file nobody can log in with is refused; a user who could not log in is named.
    const lines = auth.refusedEntries.map((entry) => `line ${entry.line} (${entry.user}): ${entry.why}`);
    if (auth.userCount === 0) {
      const why = lines.length > 0 ? `: ${lines.join("; ")}` : " (htpasswd -B adds one)";
      findings.errors.push({ path: "auth.htpasswd.path", message: `${auth.config.path} has no bcrypt entry, so nobody could log in${why}` });
    } else for (const line of lines) findings.warnings.push({ path: "auth.htpasswd.path", message: `${auth.config.path} ${line}: this user cannot log in` });
  }
  if (config.etcd) {
    const etcd = config.etcd;
    // etcd3 (and gRPC) load only for an etcd section.
    await attempt("etcd", async () => (await import("../etcd/client.js")).etcdClientOptions(etcd));
  }
  const consoleAssets = config.console.enabled ? await attempt("console", () => consoleFiles()) : undefined;
  if (findings.errors.length > 0 || !driver) return { prepared: undefined, findings };
  if (mode === "serve") {
    // A port held by another process refuses the start before anything is made.
    for (const [key, addr] of tcpListeners(config)) await attempt(key, () => probeListen(addr, key));
    if (findings.errors.length > 0) return { prepared: undefined, findings };
    // A refused start changes nothing on disk: this is the last step, and the only one that writes.
    for (const { path, key } of missing) await attempt(key, () => make(path, key));
  }
  if (findings.errors.length > 0) return { prepared: undefined, findings };
  return { prepared: { driver, auth, tls, consoleAssets }, findings };
}

async function consoleFiles(): Promise<Map<string, Asset>> {
  const assets = await (await import("../console/assets.js")).loadAssets().catch(() => undefined);
  if (!assets?.has("index.html")) throw new ConfigError("console.enabled", "the web console's files (ui/) are missing from this installation");
  return assets;
}

/**
 * A directory the registry writes to: there and writable ("present"), or "missing" where serve
 * can make it. Whether it can is tried, not guessed from permissions (root may write to /sys by
 * them, and mkdir there still fails): a probe directory is made beside where it would go and
 * removed at once.
 */
async function directory(path: string, key: string): Promise<"present" | "missing"> {
  const info = await stat(path).catch(() => undefined);
  if (info) {
    if (!info.isDirectory()) throw new ConfigError(key, `${path} is not a directory`);
    await writable(path, key);
    return "present";
  }
  let ancestor = dirname(path);
  while (!(await stat(ancestor).catch(() => undefined))) ancestor = dirname(ancestor);
  if (!(await stat(ancestor)).isDirectory()) throw new ConfigError(key, `${path} cannot be created: ${ancestor} is not a directory`);
  await writable(ancestor, key, `${path} cannot be created: `);
  const probe = await mkdtemp(join(ancestor, ".lain-registry-probe-")).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(key, `${path} cannot be created: ${ancestor} refuses new directories (${err.code ?? err.message})`);
  });
  await rmdir(probe);
  return "missing";
}

async function make(path: string, key: string): Promise<void> {
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

/** The TCP addresses serve listens on, by key: the users', the debug and the siblings' listeners. */
function tcpListeners({ http, debug, proxy }: RegistryConfig): Array<[string, string]> {
  const siblings = proxy?.siblings.enabled ? proxy.siblings.addr : undefined;
  return [
    ...(http.net === "unix" ? [] : [["http.addr", http.addr] as [string, string]]),
    ...(debug.addr !== undefined ? [["http.debug.addr", debug.addr] as [string, string]] : []),
    ...(siblings !== undefined ? [["proxy.siblings.addr", siblings] as [string, string]] : []),
  ];
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
      // EAI_AGAIN: the resolver did not answer (yet); anything else is the name's.
      const Refusal = err.code === "EAI_AGAIN" ? NotYetAvailable : ConfigError;
      throw new Refusal(key, `${addr}: the host ${host} does not resolve (${err.code ?? err.message})`);
    },
  );
  // At boot an address may come up after the registry starts (DHCP, a late interface).
  if (!isLocalAddress(address)) throw new NotYetAvailable(key, `${addr}: ${address} is not an address of this machine`);
  return address === "0.0.0.0" || address === "::" ? undefined : address;
}

function isLocalAddress(address: string): boolean {
  if (address === "0.0.0.0" || address === "::" || address === "::1" || address.startsWith("127.")) return true;
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((i) => i.address === address || i.address === address.replace(/%.*$/, "")));
}
