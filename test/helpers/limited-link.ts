import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy on 127.0.0.1 in front of a server that carries the server's bytes at a fixed
 * rate shared by all its connections: a network link to the primary. It counts what it carried
 * and can be cut (every connection reset) at any moment.
 */
export class LimitedLink {
  /** Server-to-client bytes carried so far. */
  carried = 0;
  /** Called with `carried` after each chunk (e.g. to cut the link mid-blob). */
  onCarried: ((carried: number) => void) | undefined;
  /** When the link is free again (performance.now()). */
  private freeAt = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly bytesPerSecond: number,
  ) {}

  static async start(target: string, bytesPerSecond: number): Promise<LimitedLink> {
    const { hostname, port } = new URL(target);
    let link: LimitedLink | undefined;
    const server = createServer((client) => {
      if (link) link.carry(client, connect(Number(port), hostname));
      else client.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    link = new LimitedLink(server, `http://127.0.0.1:${(server.address() as { port: number }).port}`, bytesPerSecond);
    return link;
  }

  /** Resets every open connection, as a link that goes down does to them. */
  cut(): void {
    for (const socket of this.sockets) socket.resetAndDestroy();
  }

  /** Carries nothing for `ms` from now (a congested link, or a primary slow to answer), then goes on. */
  stall(ms: number): void {
    this.freeAt = Math.max(performance.now(), this.freeAt) + ms;
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private carry(client: Socket, upstream: Socket): void {
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    }
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      // Each chunk takes the link for its share of a second, after those queued before it.
      upstream.pause();
      const now = performance.now();
      this.freeAt = Math.max(now, this.freeAt) + (chunk.length / this.bytesPerSecond) * 1000;
      setTimeout(() => {
        if (client.destroyed) return;
        this.carried += chunk.length;
        client.write(chunk);
        this.onCarried?.(this.carried);
        upstream.resume();
      }, this.freeAt - now);
    });
  }
}
