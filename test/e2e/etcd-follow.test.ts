import { Etcd3 } from "etcd3";
import { createServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EtcdKeyWatch } from "../../src/etcd/client.js";
import { startEtcd, type RunningEtcd } from "../helpers/etcd.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const KEY = "/lain/test/followed";
const settings = (endpoint: string) => ({ endpoints: [endpoint], authKey: KEY, readOnlyKey: "/unused" });

describe.skipIf(!hasTool("etcd"))("following an etcd key", () => {
  let etcd: RunningEtcd;
  let client: Etcd3;

  beforeAll(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoint });
  });
  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  it("applies values in etcd's order when an older one takes longer to apply", async () => {
    await client.put(KEY).value("first");
    const applied: string[] = [];
    let firstStarted = false;
    const watch = new EtcdKeyWatch(
      settings(etcd.endpoint),
      KEY,
      async (text) => {
        // The first value applies slowly (a token issuer's certificates read from a slow disk).
        if (text === "first") {
          firstStarted = true;
          await new Promise((r) => setTimeout(r, 800));
        }
        applied.push(text ?? "(deleted)");
      },
      () => undefined,
    );
    try {
      watch.start();
      await until(() => firstStarted, "the first value to start applying");
      await client.put(KEY).value("second");
      await until(() => applied.length === 2, "both values to be applied");
      expect(applied).toEqual(["first", "second"]);
    } finally {
      watch.close();
    }
  });

  it("an etcd that accepts connections but never answers is reported, not waited on forever", async () => {
    const held = new Set<Socket>();
    const silent = createServer((socket) => {
      held.add(socket);
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const troubles: string[] = [];
    const watch = new EtcdKeyWatch(settings(`http://127.0.0.1:${(silent.address() as { port: number }).port}`), KEY, async () => undefined, (m) => troubles.push(m));
    try {
      watch.start();
      // gRPC's own connection timeout is 20 s; the follower's deadline on the read is what reports it.
      await until(() => troubles.length > 0, "a trouble report", 15_000);
      expect(troubles[0]).toMatch(/unreachable \(the read unanswered for \d+ ms\)/);
      expect(watch.connected).toBe(false);
    } finally {
      watch.close();
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
