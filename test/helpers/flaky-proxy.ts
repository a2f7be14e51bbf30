import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy on 127.0.0.1 in front of a real server that can be told to reset the next
 * connections, to test how a client copes with a store that fails and recovers.
 */
export class FlakyProxy {
  /** Connections still to reset; Infinity keeps the store "down". */
  resetNext = 0;
  /** Connections accepted so far (reset ones included). */
  accepted = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(target: string): Promise<FlakyProxy> {
    const { hostname, port } = new URL(target);
    let proxy: FlakyProxy | undefined;
    const server = createServer((client) => {
      if (!proxy) return client.destroy();
      proxy.accepted++;
      proxy.sockets.add(client);
      client.on("close", () => proxy?.sockets.delete(client));
      if (proxy.resetNext > 0) {
        proxy.resetNext--;
        client.resetAndDestroy();
        return;
      }
      const upstream = connect(Number(port), hostname);
      proxy.sockets.add(upstream);
      upstream.on("close", () => proxy?.sockets.delete(upstream));
      client.pipe(upstream).pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address() as { port: number };
    proxy = new FlakyProxy(server, `http://127.0.0.1:${address.port}`);
    return proxy;
  }

  /** Cuts every open connection (keep-alive ones included) so the next requests reconnect. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  close(): Promise<void> {
    this.dropConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
