import { execFile, spawn } from "node:child_process";
import { readFile, mkdir, rm, stat, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import bcrypt from "bcryptjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { startRegistry } from "../../src/cli/serve.js";
import { parseConfig } from "../../src/config/load.js";
import { cliArgs, freePort } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { caSignedIdentity, selfSignedIdentity } from "../helpers/token-issuer.js";
import { hasTool } from "../helpers/tools.js";

const available = hasTool("openssl");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built CLI with an environment of the test's own; `serve` is stopped if it does start. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, cliArgs(...args), { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A GET over a unix socket or TCP, answering the status (or the error that prevented one). */
function get(target: { socketPath: string } | { port: number; tls?: { cert?: Buffer; key?: Buffer } }, path: string, headers: Record<string, string> = {}): Promise<number | string> {
  return new Promise((resolve) => {
    const tls = "port" in target ? target.tls : undefined;
    const options = "socketPath" in target ? { socketPath: target.socketPath } : { host: "127.0.0.1", port: target.port };
    const req = (tls ? httpsRequest : httpRequest)({ ...options, path, headers, rejectUnauthorized: false, ...(tls ?? {}) }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.setTimeout(5000, () => req.destroy(new Error("timeout")));
    req.on("error", (err) => resolve((err as NodeJS.ErrnoException).code ?? err.message));
    req.end();
  });
}

const until = async <T>(probe: () => Promise<T>, done: (value: T) => boolean): Promise<T> => {
  let value = await probe();
  for (let i = 0; i < 100 && !done(value); i++) {
    await new Promise((r) => setTimeout(r, 100));
    value = await probe();
  }
  return value;
};

describe.skipIf(!available)("config check and serve agree", () => {
  let work: string;
  let cert: string;
  let key: string;
  let otherKey: string;
  let bundle: string;

  beforeAll(async () => {
    work = await tempDir("lain-agree-");
    const server = await selfSignedIdentity(work, "server");
    await selfSignedIdentity(work, "other");
    cert = server.certPath;
    key = join(work, "server.key");
    otherKey = join(work, "other.key");
    bundle = server.certPath;
    await writeFile(join(work, "garbage.pem"), "not a certificate\n");
    await writeFile(join(work, "garbage.json"), "{ not json");
    await writeFile(join(work, "md5.htpasswd"), "alice:$apr1$shAJOFpH$qmY7.AXLxP7PJH344j.ih.\n");
    await writeFile(join(work, "a-file"), "");
    await mkdir(join(work, "a-dir"));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  const storage = () => `storage: {filesystem: {rootdirectory: ${join(work, "store")}}}`;
  /** A fleet mirror whose siblings' listener is at `door`. */
  const fleet = (door: string) =>
    `http: {addr: "127.0.0.1:5000", secret: s}\netcd: {endpoints: [http://127.0.0.1:9]}\ncluster: {advertise: "http://${door}"}\nproxy: {remoteurl: "http://127.0.0.1:9", siblings: {enabled: true, addr: "${door}"}}`;
  const token = (extra: string) => `auth: {token: {realm: https://auth.example/token, service: lain.local, issuer: ci, ${extra}}}`;

  /**
   * Each configuration serve must refuse, the key path both name, and a piece of the message;
   * `exit` 1 where what is missing may come by itself (an address not up yet), else 2.
   */
  const refused: Array<{ name: string; yaml: () => string; path: string; says: string; env?: () => NodeJS.ProcessEnv; exit?: 1 }> = [
    { name: "an unknown storage driver (a typo)", yaml: () => `storage: {filesytem: {rootdirectory: ${join(work, "x")}}}`, path: "storage.filesytem", says: "is not a storage driver" },
    { name: "an unknown driver from REGISTRY_STORAGE", yaml: () => storage(), env: () => ({ REGISTRY_STORAGE: "swiftly" }), path: "storage.swiftly", says: "is not a storage driver" },
    { name: "two storage drivers", yaml: () => "storage: {filesystem: {}, inmemory: {}}", path: "storage", says: "keep exactly one" },
    { name: "a listen address without a port", yaml: () => `${storage()}\nhttp: {addr: "5000"}`, path: "http.addr", says: "must be host:port" },
    { name: "a port out of range", yaml: () => `${storage()}\nhttp: {addr: "127.0.0.1:70000"}`, path: "http.addr", says: "a port from 0 to 65535" },
    { name: "a host that does not resolve", yaml: () => `${storage()}\nhttp: {addr: "no-such-host.invalid:5000"}`, path: "http.addr", says: "does not resolve" },
    { name: "an address of another machine", yaml: () => `${storage()}\nhttp: {addr: "203.0.113.7:5000"}`, path: "http.addr", says: "is not an address of this machine", exit: 1 },
    { name: "a bad debug address", yaml: () => `${storage()}\nhttp: {addr: "127.0.0.1:0", debug: {addr: nonsense}}`, path: "http.debug.addr", says: "must be host:port" },
    { name: "a unix socket in a missing directory", yaml: () => `${storage()}\nhttp: {net: unix, addr: ${join(work, "missing", "r.sock")}}`, path: "http.addr", says: "is not writable (ENOENT)" },
    { name: "a unix socket path that is a file", yaml: () => `${storage()}\nhttp: {net: unix, addr: ${join(work, "a-file")}}`, path: "http.addr", says: "exists and is not a socket" },
    { name: "a certificate without its key", yaml: () => `${storage()}\nhttp: {addr: "127.0.0.1:0", tls: {certificate: ${cert}}}`, path: "http.tls.key", says: "is required with http.tls.certificate" },
    { name: "a certificate file that is missing", yaml: () => `${storage()}\nhttp: {addr: "127.0.0.1:0", tls: {certificate: ${join(work, "nope.pem")}, key: ${key}}}`, path: "http.tls.certificate", says: "cannot be read: ENOENT" },
    { name: "a key of another certificate", yaml: () => `${storage()}\nhttp: {addr: "127.0.0.1:0", tls: {certificate: ${cert}, key: ${otherKey}}}`, path: "http.tls", says: "do not make a TLS setup" },
    { name: "a client CA bundle that is missing", yaml: () => `${storage()}\nhttp: {addr: "127.0.0.1:0", tls: {certificate: ${cert}, key: ${key}, clientcas: [${join(work, "no-ca.pem")}]}}`, path: "http.tls.clientcas[0]", says: "cannot be read: ENOENT" },
    { name: "an unknown cipher suite", yaml: () => `${storage()}\nhttp: {addr: "127.0.0.1:0", tls: {certificate: ${cert}, key: ${key}, ciphersuites: [TLS_RSA_WITH_RC4_128_SHA]}}`, path: "http.tls.ciphersuites", says: "TLS_RSA_WITH_RC4_128_SHA" },
    { name: "Let's Encrypt", yaml: () => `${storage()}\nhttp: {addr: "127.0.0.1:0", tls: {letsencrypt: {email: a@b.c}}}`, path: "http.tls.letsencrypt", says: "refused" },
    { name: "a token bundle that is missing", yaml: () => `${storage()}\n${token(`rootcertbundle: ${join(work, "nope.pem")}`)}`, path: "auth.token.rootcertbundle", says: "cannot be read: ENOENT" },
    { name: "a token bundle without a certificate", yaml: () => `${storage()}\n${token(`rootcertbundle: ${join(work, "garbage.pem")}`)}`, path: "auth.token.rootcertbundle", says: "holds no certificate" },
    { name: "a JWKS file that is not JSON", yaml: () => `${storage()}\n${token(`jwks: ${join(work, "garbage.json")}`)}`, path: "auth.token.jwks", says: "does not parse" },
    { name: "a symmetric signing algorithm", yaml: () => `${storage()}\n${token(`rootcertbundle: ${bundle}, signingalgorithms: [HS256]`)}`, path: "auth.token.signingalgorithms", says: "asymmetric algorithms only" },
    { name: "an htpasswd file that is missing", yaml: () => `${storage()}\nauth: {htpasswd: {realm: r, path: ${join(work, "no-htpasswd")}}}`, path: "auth.htpasswd.path", says: "cannot be read: ENOENT" },
    { name: "an htpasswd path that is a directory", yaml: () => `${storage()}\nauth: {htpasswd: {realm: r, path: ${join(work, "a-dir")}}}`, path: "auth.htpasswd.path", says: "cannot be read: EISDIR" },
    { name: "the silly access controller", yaml: () => `${storage()}\nauth: {silly: {realm: r, service: s}}`, path: "auth.silly", says: "refused" },
    { name: "a root directory that is a file", yaml: () => `storage: {filesystem: {rootdirectory: ${join(work, "a-file")}}}`, path: "storage.filesystem.rootdirectory", says: "is not a directory" },
    { name: "a root directory that cannot be created", yaml: () => `storage: {filesystem: {rootdirectory: ${join(work, "a-file", "store")}}}`, path: "storage.filesystem.rootdirectory", says: "is not a directory" },
    { name: "a spool directory that is a file", yaml: () => `${storage()}\nproxy: {remoteurl: "http://127.0.0.1:9", spooldir: ${join(work, "a-file")}}`, path: "proxy.spooldir", says: "is not a directory" },
    { name: "a scrub that reads nothing", yaml: () => `storage: {filesystem: {rootdirectory: ${join(work, "scrub-store")}}, scrub: {enabled: true, rate: 0}}`, path: "storage.scrub.rate", says: "must be at least 1" },
    { name: "an S3 store without a bucket", yaml: () => "storage: {s3: {region: us-east-1}}", path: "storage.s3.bucket", says: "is required" },
    { name: "S3 parts smaller than S3 allows", yaml: () => "storage: {s3: {bucket: b, chunksize: 1024}}", path: "storage.s3.chunksize", says: "at least 5242880" },
    { name: "an OSS store without its secret", yaml: () => "storage: {oss: {bucket: b, accesskeyid: k}}", path: "storage.oss.accesskeysecret", says: "is required" },
    { name: "an AWS_CA_BUNDLE that cannot be read", yaml: () => "storage: {s3: {bucket: b}}", env: () => ({ AWS_CA_BUNDLE: join(work, "no-ca.pem") }), path: "AWS_CA_BUNDLE", says: "cannot be read" },
    { name: "an etcd client certificate without its key", yaml: () => `${storage()}\netcd: {cafile: ${cert}, certfile: ${cert}}`, path: "etcd.keyfile", says: "is required with etcd.certfile" },
    { name: "an etcd CA file that is missing", yaml: () => `${storage()}\netcd: {cafile: ${join(work, "no-ca.pem")}}`, path: "etcd.cafile", says: "cannot be read: ENOENT" },
    { name: "a mirror on every interface without auth, not said on purpose", yaml: () => `${storage()}\nhttp: {addr: ":0"}\nproxy: {remoteurl: "http://127.0.0.1:9"}`, path: "http.addr", says: "set proxy.unauthenticated: true" },
    { name: "a standby that takes pushes without an auth section", yaml: () => `${storage()}\nhttp: {addr: "127.0.0.1:0"}\nproxy: {remoteurl: "http://127.0.0.1:9", pushes: writeback}`, path: "proxy.pushes", says: "needs an auth section" },
    { name: "a siblings' listener on the users' port", yaml: () => `${storage()}\n${fleet("127.0.0.1:5000")}`, path: "proxy.siblings.addr", says: "must be another port than http.addr" },
    { name: "a siblings' listener on another machine's address", yaml: () => `${storage()}\n${fleet("203.0.113.7:5001")}`, path: "proxy.siblings.addr", says: "is not an address of this machine", exit: 1 },
    { name: "an unknown key (a typo), with what it likely meant", yaml: () => `${storage()}\nhtpp: {addr: "127.0.0.1:0"}`, path: "htpp", says: "did you mean http?" },
    { name: "an htpasswd file nobody can log in with", yaml: () => `${storage()}\nauth: {htpasswd: {realm: r, path: ${join(work, "md5.htpasswd")}}}`, path: "auth.htpasswd.path", says: "line 1 (alice): an MD5 entry" },
    { name: "a root directory where no directory can be made", yaml: () => "storage: {filesystem: {rootdirectory: /proc/lain-registry-store}}", path: "storage.filesystem.rootdirectory", says: "/proc/lain-registry-store cannot be created: /proc" },
    { name: "an http.host that is not a URL", yaml: () => `${storage()}\nhttp: {addr: "127.0.0.1:0", host: registry.lain.local}`, path: "http.host", says: "must be an http:// or https:// URL" },
  ];

  it.each(refused)("$name: config check names $path, serve refuses with the same line", async ({ yaml, path, says, env, exit }) => {
    const config = join(work, `refused-${Math.random().toString(36).slice(2)}.yml`);
    await writeFile(config, `version: 0.1\nlog: {level: error}\n${yaml()}\n`);
    const environment = env?.() ?? {};
    const check = await cli(["config", "check", config], environment);
    expect(check.code).toBe(1);
    const checked = check.stdout.split("\n").find((line) => line.startsWith(`error: ${path}: `));
    expect(checked, check.stdout).toContain(says);
    const served = await cli(["serve", config], environment);
    expect(served.code, served.stderr).toBe(exit ?? 2);
    if (exit === 1) expect(served.stderr).toContain("exiting 1, for the supervisor to start it again");
    expect(served.stderr.split("\n")).toContain(`config error: ${checked!.slice("error: ".length)}`);
    expect(served.stderr).not.toMatch(/\n\s+at /);
  });

  it("a stale unix socket: config check accepts it, serve replaces it and serves there", async () => {
    const socket = join(work, "stale.sock");
    // A socket file left by a process that died: bound, then never closed cleanly.
    const leftover = createServer();
    await new Promise<void>((resolve) => leftover.listen(socket, resolve));
    await promisify(execFile)("cp", ["-a", socket, `${socket}.keep`]);
    await new Promise<void>((resolve) => leftover.close(() => resolve()));
    await promisify(execFile)("mv", [`${socket}.keep`, socket]);
    expect((await stat(socket)).isSocket()).toBe(true);
    const config = join(work, "unix.yml");
    await writeFile(config, `version: 0.1\nlog: {level: error}\n${storage()}\nhttp: {net: unix, addr: ${socket}, secret: s}\n`);
    expect((await cli(["config", "check", config])).code).toBe(0);
    const server = spawn(process.execPath, cliArgs("serve", config), { stdio: "ignore" });
    try {
      expect(await until(() => get({ socketPath: socket }, "/v2/"), (s) => s === 200)).toBe(200);
    } finally {
      server.kill("SIGTERM");
    }
  });

  it("directories that do not exist yet: config check --connect says serve will make them and makes nothing; serve makes them", async () => {
    const root = join(work, "fresh", "store");
    const spool = join(work, "fresh", "spool");
    const port = await freePort();
    const config = join(work, "fresh.yml");
    await writeFile(config, `version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: ${root}}}\nhttp: {addr: "127.0.0.1:${port}", secret: s}\nproxy: {remoteurl: "http://127.0.0.1:9", spooldir: ${spool}}\n`);
    const check = await cli(["config", "check", "--connect", config]);
    expect(check.stdout).toContain(`warning: storage.filesystem.rootdirectory: ${root} does not exist yet; serve will create it`);
    expect(check.stdout).toContain(`warning: proxy.spooldir: ${spool} does not exist yet; serve will create it`);
    expect(check.stdout).toContain("storage: the root directory does not exist yet; serve will create it");
    await expect(stat(join(work, "fresh"))).rejects.toMatchObject({ code: "ENOENT" });
    const server = spawn(process.execPath, cliArgs("serve", config), { stdio: "ignore" });
    try {
      expect(await until(() => get({ port }, "/v2/"), (s) => s === 200)).toBe(200);
      expect((await stat(root)).isDirectory()).toBe(true);
      expect((await stat(spool)).isDirectory()).toBe(true);
    } finally {
      server.kill("SIGTERM");
    }
  });

  it("TLS with client CAs, a minimum version and cipher suites: accepted, and served as asked", async () => {
    const ca = await selfSignedIdentity(work, "clients-ca");
    const client = await caSignedIdentity(work, ca, "client");
    const port = await freePort();
    const config = join(work, "tls.yml");
    await writeFile(
      config,
      `version: 0.1\nlog: {level: error}\n${storage()}\nhttp:\n  addr: "127.0.0.1:${port}"\n  secret: s\n  tls:\n    certificate: ${cert}\n    key: ${key}\n    clientcas: [${ca.certPath}]\n    minimumtls: tls1.2\n    ciphersuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n`,
    );
    expect((await cli(["config", "check", config])).code).toBe(0);
    const server = spawn(process.execPath, cliArgs("serve", config), { stdio: "ignore" });
    try {
      const withCert = { port, tls: { cert: await readFile(client.certPath), key: await readFile(join(work, "client.key")) } };
      expect(await until(() => get(withCert, "/v2/"), (s) => s === 200)).toBe(200);
      // Without a client certificate the handshake is refused: no HTTP answer at all.
      expect(await get({ port, tls: {} }, "/v2/")).not.toBe(200);
    } finally {
      server.kill("SIGTERM");
    }
  });

  it("htpasswd: an existing file serves; if it goes while serving, its users keep working (never a 500)", async () => {
    const htpasswd = join(work, "htpasswd");
    await writeFile(htpasswd, `alice:${bcrypt.hashSync("secret", 4)}\n`);
    const port = await freePort();
    const config = join(work, "htpasswd.yml");
    await writeFile(config, `version: 0.1\nlog: {level: error}\n${storage()}\nhttp: {addr: "127.0.0.1:${port}", secret: s}\nauth: {htpasswd: {realm: r, path: ${htpasswd}}}\n`);
    expect((await cli(["config", "check", config])).code).toBe(0);
    const server = spawn(process.execPath, cliArgs("serve", config), { stdio: "ignore" });
    try {
      const alice = { authorization: `Basic ${Buffer.from("alice:secret").toString("base64")}` };
      expect(await until(() => get({ port }, "/v2/", alice), (s) => s === 200)).toBe(200);
      await rm(htpasswd);
      expect(await get({ port }, "/v2/", alice)).toBe(200);
      expect(await get({ port }, "/v2/", { authorization: `Basic ${Buffer.from("alice:wrong").toString("base64")}` })).toBe(401);
    } finally {
      server.kill("SIGTERM");
    }
  });

  it("an address in use: serve exits 1 naming it, for its supervisor to try again, and makes nothing on disk; a busy second listener refuses the start too", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const busy = (taken.address() as { port: number }).port;
    try {
      const config = join(work, "busy.yml");
      const root = join(work, "busy-store");
      await writeFile(config, `version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: ${root}}}\nhttp: {addr: "127.0.0.1:${busy}", secret: s}\n`);
      const served = await cli(["serve", config]);
      expect(served.code).toBe(1);
      expect(served.stderr).toContain(`config error: http.addr: 127.0.0.1:${busy} is in use by another process`);
      await expect(stat(root)).rejects.toMatchObject({ code: "ENOENT" });

      const main = await freePort();
      const loaded = parseConfig(`version: 0.1\n${storage()}\nhttp: {addr: "127.0.0.1:${main}", secret: s, debug: {addr: "127.0.0.1:${busy}"}}\n`, {});
      if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
      await expect(startRegistry(loaded.config, pino({ level: "silent" }))).rejects.toMatchObject({ problems: [{ path: "http.debug.addr", transient: true }] });
      const again = createServer();
      await new Promise<void>((resolve, reject) => again.once("error", reject).listen(main, "127.0.0.1", resolve));
      await new Promise<void>((resolve) => again.close(() => resolve()));
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });
});
