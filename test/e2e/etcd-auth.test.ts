import { Etcd3 } from "etcd3";
import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { libtrustKeyId } from "../../src/auth/libtrust.js";
import { startEtcd, type RunningEtcd } from "../helpers/etcd.js";
import { call } from "../helpers/http.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { selfSignedIdentity, signToken, type SigningIdentity } from "../helpers/token-issuer.js";
import { hasTool } from "../helpers/tools.js";

const KEY = "/lain/config/auth/registry";
const available = hasTool("etcd") && hasTool("openssl");

/** Polls until `check` holds, for at most `ms` (settings apply "within seconds"). */
async function eventually(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!available)("auth settings that follow etcd live", () => {
  let work: string;
  let etcd: RunningEtcd;
  let client: Etcd3;
  let registry: TestRegistry;
  let signer: SigningIdentity;

  const status = async () => (await call("GET", `${registry.url}/v2/`)).status;
  const settings = (realm: string) =>
    JSON.stringify({ realm, issuer: "auth server", service: "lain.local", rootcertbundle: signer.certPath });

  beforeAll(async () => {
    work = await tempDir("lain-etcd-auth-");
    signer = await selfSignedIdentity(work, "console");
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoint });
    await client.delete().key(KEY);
    registry = await startTestRegistry({ extraYaml: `etcd:\n  endpoints: [${etcd.endpoint}]` });
  });
  afterAll(async () => {
    client?.close();
    await registry?.close();
    await etcd?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("is open while the key is absent", async () => {
    expect(await status()).toBe(200);
  });

  it("etcdctl set turns token auth on within seconds, with the key's realm", async () => {
    await client.put(KEY).value(settings("http://console.lain.local/api/v1/authorize/registry/"));
    await eventually(async () => (await status()) === 401);
    const reply = await call("GET", `${registry.url}/v2/`);
    expect(reply.headers["www-authenticate"]).toContain('realm="http://console.lain.local/api/v1/authorize/registry/"');
    const token = await signToken(signer.key, {
      issuer: "auth server",
      audience: "lain.local",
      access: [],
      header: { kid: libtrustKeyId(signer.certificate.publicKey) },
    });
    expect((await call("GET", `${registry.url}/v2/`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it("garbage written to the key keeps the last good settings, and /health shows the error", async () => {
    await client.put(KEY).value("{not json");
    await eventually(async () => (await call("GET", `${registry.url}/health`)).json<{ status: string }>().status === "degraded");
    const health = (await call("GET", `${registry.url}/health`)).json<{ auth: unknown; etcd: { error: string; connected: boolean } }>();
    expect(health.auth).toEqual({ mode: "token", source: "etcd" });
    expect(health.etcd.connected).toBe(true);
    expect(health.etcd.error).toContain("invalid value");
    expect(await status()).toBe(401);
    await client.put(KEY).value(JSON.stringify({ realm: 42 }));
    // Read once the registry has refused the new value too (its error changed), not after a guess.
    await eventually(async () => (await call("GET", `${registry.url}/health`)).json<{ etcd: { error?: string } }>().etcd.error !== health.etcd.error);
    const reply = await call("GET", `${registry.url}/v2/`);
    expect(reply.status).toBe(401);
    expect(reply.headers["www-authenticate"]).toContain("console.lain.local");
  });

  it("a change applies to new requests", async () => {
    await client.put(KEY).value(settings("http://realm-two.local/token"));
    await eventually(async () => ((await call("GET", `${registry.url}/v2/`)).headers["www-authenticate"] ?? "").includes("realm-two"));
  });

  it("etcdctl rm turns auth off again", async () => {
    await client.delete().key(KEY);
    await eventually(async () => (await status()) === 200);
    const health = (await call("GET", `${registry.url}/health`)).json<{ status: string; auth: unknown }>();
    expect(health).toMatchObject({ status: "ok", auth: { mode: "none", source: "file" } });
  });

  it("does not fall open while etcd is down, and keeps following the key after a restart", async () => {
    await client.put(KEY).value(settings("http://before-kill.local/token"));
    await eventually(async () => ((await call("GET", `${registry.url}/v2/`)).headers["www-authenticate"] ?? "").includes("before-kill"));
    await etcd.kill();
    await eventually(async () => (await call("GET", `${registry.url}/health`)).json<{ etcd: { connected: boolean } }>().etcd.connected === false);
    expect(await status()).toBe(401);
    await etcd.restart();
    await client.put(KEY).value(settings("http://after-restart.local/token"));
    await eventually(async () => ((await call("GET", `${registry.url}/v2/`)).headers["www-authenticate"] ?? "").includes("after-restart"), 20_000);
    await client.delete().key(KEY);
    await eventually(async () => (await status()) === 200);
  });

  it("starts on the file's settings while etcd is down, and applies the key once it is up", async () => {
    const late = await startEtcd();
    await late.kill();
    const waiting = await startTestRegistry({ extraYaml: `etcd:\n  endpoints: [${late.endpoint}]` });
    try {
      expect((await call("GET", `${waiting.url}/v2/`)).status).toBe(200);
      await late.restart();
      const lateClient = new Etcd3({ hosts: late.endpoint });
      await lateClient.put(KEY).value(settings("http://late.local/token"));
      lateClient.close();
      await eventually(async () => (await call("GET", `${waiting.url}/v2/`)).status === 401, 20_000);
    } finally {
      await waiting.close();
      await late.stop();
    }
  });
});
