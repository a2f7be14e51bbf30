import { lstat, unlink } from "node:fs/promises";
import type { Server } from "node:http";
import { connect, createServer as createNetServer, type AddressInfo } from "node:net";
import type { Logger } from "pino";
import { ConfigError, NotYetAvailable } from "../refusal.js";
import { listenAddress } from "../config/listen-address.js";

export interface RunningServer {
  server: Server;
  /** "http://127.0.0.1:5000" (or the unix socket path) */
  url: string;
  /**
   * Stops accepting connections; requests in flight get up to `graceMs` to finish (idle
   * keep-alive connections close at once), then every connection is cut.
   */
  close(graceMs?: number): Promise<void>;
}

const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE: "is in use by another process",
  EACCES: "is not permitted (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "is not an address of this machine",
  ENOTFOUND: "names a host that does not resolve",
};

/** Why an address cannot be listened on, as the refusal of its key. */
function listenRefusal(err: NodeJS.ErrnoException, shown: string, key: string): ConfigError {
  // Another process's port may be freed, a late interface may come up: a restart can help.
  const Refusal = err.code === "EADDRINUSE" || err.code === "EADDRNOTAVAIL" ? NotYetAvailable : ConfigError;
  return new Refusal(key, `${shown} ${LISTEN_FAILURES[err.code ?? ""] ?? `cannot be listened on: ${err.message}`}`);
}

/**
 * Listens on a TCP host:port and lets it go at once: whether serve could listen there, asked
 * before it changes anything on disk. (Only serve asks: `config check` beside a running
 * registry would find its own port taken.)
 */
export async function probeListen(addr: string, key: string): Promise<void> {
  const { host, port } = listenAddress(addr);
  if (port === 0) return;
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => reject(listenRefusal(err, addr, key)));
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/** Whether something accepts connections on a unix socket. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.setTimeout(1000, () => socket.destroy());
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.once("close", () => resolve(false));
  });
}

/** A socket file nobody listens on is a leftover of a process that died: removed, as distribution does. */
async function clearStaleSocket(path: string, key: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (!info) return;
  if (!info.isSocket()) throw new ConfigError(key, `${path} exists and is not a socket`);
  if (await answers(path)) throw new NotYetAvailable(key, `${path} ${LISTEN_FAILURES.EADDRINUSE}`);
  await unlink(path);
}

/**
 * Listens on "host:port" (":port" is every interface) or a unix socket; a failure is a
 * ConfigError at `key`. close(graceMs) stops accepting, lets requests in flight finish within
 * the grace (idle keep-alive connections close at once), then cuts every connection.
 */
export async function listen(server: Server, addr: string | { path: string }, scheme: "http" | "https", where: { key: string; log: Logger }): Promise<RunningServer> {
  if (typeof addr !== "string") await clearStaleSocket(addr.path, where.key);
  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => reject(listenRefusal(err, typeof addr === "string" ? addr : addr.path, where.key));
    server.once("error", failed);
    const listening = () => {
      server.off("error", failed);
      // Past the start (an accept failing for lack of file descriptors): said, never fatal.
      server.on("error", (err) => where.log.error({ err, listener: where.key }, "listener error"));
      resolve();
    };
    if (typeof addr !== "string") server.listen(addr.path, listening);
    else {
      const { host, port } = listenAddress(addr);
      server.listen(port, host, listening);
    }
  });
  const address = server.address();
  const url =
    typeof address === "string" ? address : `${scheme}://${formatHost((address as AddressInfo).address)}:${(address as AddressInfo).port}`;
  return {
    server,
    url,
    close: (graceMs = 0) =>
      new Promise<void>((resolve) => {
        const cut = setTimeout(() => server.closeAllConnections(), graceMs);
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
        if (graceMs === 0) server.closeAllConnections();
      }),
  };
}

function formatHost(address: string): string {
  if (address === "::" || address === "0.0.0.0") return "127.0.0.1";
  return address.includes(":") ? `[${address}]` : address;
}
