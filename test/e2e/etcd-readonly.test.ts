import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEtcd, type RunningEtcd } from "../helpers/etcd.js";
import { call, errorCode } from "../helpers/http.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { METRICS_ON_MAIN_PORT, scrape } from "../helpers/metrics.js";
import { hasTool } from "../helpers/tools.js";

const KEY = "/lain/config/registry/readonly";

describe.skipIf(!hasTool("etcd"))("read-only mode switched through etcd", () => {
  let etcd: RunningEtcd;
  let client: Etcd3;
  let registry: TestRegistry;
  const logged: string[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoint });
    registry = await startTestRegistry({ extraYaml: `${METRICS_ON_MAIN_PORT}\netcd:\n  endpoints: ["${etcd.endpoint}"]`, logLines: logged });
  });
  afterAll(async () => {
    await registry?.close();
    client?.close();
    await etcd?.stop();
  });

  const startUpload = () => call("POST", `${registry.url}/v2/lain/app/blobs/uploads/`);
  const health = async () => (await call("GET", `${registry.url}/health`)).json<{ readonly: { enabled: boolean; source: string } }>().readonly;

  it("turns writes off with `etcdctl put <key> true`, ignores garbage, and turns them back on when the key goes", async () => {
    expect((await startUpload()).status).toBe(202);
    await client.put(KEY).value("true");
    await expect.poll(async () => (await startUpload()).status, { timeout: 5000 }).toBe(405);
    const refused = await startUpload();
    expect(errorCode(refused)).toBe("UNSUPPORTED");
    expect(await health()).toEqual({ enabled: true, source: "etcd" });
    // Reads keep working.
    expect((await call("GET", `${registry.url}/v2/`)).status).toBe(200);

    await client.put(KEY).value("perhaps");
    // Read once the registry has seen the value (and said it ignores it), not after a guess.
    await expect.poll(() => logged.some((line) => line.includes("read-only key holds neither true nor false")), { timeout: 5000 }).toBe(true);
    expect((await startUpload()).status).toBe(405);

    await client.put(KEY).value('{"enabled": false}');
    await expect.poll(async () => (await startUpload()).status, { timeout: 5000 }).toBe(202);
    await client.put(KEY).value("true");
    await expect.poll(async () => (await startUpload()).status, { timeout: 5000 }).toBe(405);
    await client.delete().key(KEY);
    await expect.poll(async () => (await startUpload()).status, { timeout: 5000 }).toBe(202);
    expect(await health()).toEqual({ enabled: false, source: "file" });
  });

  it("reports each etcd watch in registry_etcd_watch_up: 1 while established, 0 once etcd is gone", async () => {
    const watchUp = async (key: string) => (await scrape(`${registry.url}/metrics`))("registry_etcd_watch_up", { key });
    await expect.poll(() => watchUp(KEY), { timeout: 5000 }).toBe(1);
    await expect.poll(() => watchUp("/lain/config/auth/registry"), { timeout: 5000 }).toBe(1);
    await etcd.stop();
    await expect.poll(() => watchUp(KEY), { timeout: 20_000, interval: 250 }).toBe(0);
  });
});
