import bcrypt from "bcryptjs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/http.js";
import { startReceiver } from "../helpers/notification-receiver.js";
import { sample } from "../helpers/metrics.js";
import { randomImage, writeOciLayout, type Image } from "../helpers/oci.js";
import { freePort, startLainProcess, type ServerProcess } from "../helpers/process.js";
import { startTestRegistry, tempDir } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { until } from "../helpers/until.js";
import { hasTool } from "../helpers/tools.js";

const PASSWORD = "Pa55-wonderland-7e1f";
const NOTIFY_TOKEN = "notify-token-3c9d5e7a";
const PROXY_PASSWORD = "proxy-pass-8b2a4f6c";
const HTTP_SECRET = "http-secret-5d1e9c3b";
const BOGUS_BEARER = "bogusbearertoken0123456789";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe.skipIf(!hasTool("skopeo"))("operations: access log, metrics, notifications, no secrets in logs", () => {
  let work: string;
  let registry: ServerProcess;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let debugUrl: string;
  let image: Image;
  const auth = { authorization: basic("alice", PASSWORD) };

  beforeAll(async () => {
    work = await tempDir("lain-ops-");
    receiver = await startReceiver(3);
    const htpasswd = join(work, "htpasswd");
    await writeFile(htpasswd, `alice:${bcrypt.hashSync(PASSWORD, 5)}\n`);
    const [port, debugPort, deadPort] = [await freePort(), await freePort(), await freePort()];
    debugUrl = `http://127.0.0.1:${debugPort}`;
    const config = join(work, "config.yml");
    await writeFile(
      config,
      `version: 0.1
log:
  level: debug
  formatter: json
  fields: {service: registry, environment: operations-test}
storage:
  filesystem: {rootdirectory: ${join(work, "store")}}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:${port}
  secret: ${HTTP_SECRET}
  debug:
    addr: 127.0.0.1:${debugPort}
    prometheus: {enabled: true, path: /metrics}
auth:
  htpasswd: {realm: ops, path: ${htpasswd}}
proxy:
  remoteurl: http://127.0.0.1:${deadPort}
  username: mirror
  password: ${PROXY_PASSWORD}
  namespaces: [mirrored]
notifications:
  events: {includereferences: true}
  endpoints:
    - name: flaky
      url: ${receiver.url}/events
      headers: {Authorization: [Bearer ${NOTIFY_TOKEN}]}
      timeout: 2s
      threshold: 2
      backoff: 300ms
    - name: pushes-only
      url: ${receiver.url}/pushes
      ignore: {actions: [pull], mediatypes: [application/octet-stream]}
    - name: hanging
      url: ${receiver.url}/hang
      timeout: 300ms
      threshold: 1
      backoff: 100ms
      queuesize: 3
    - name: switched-off
      disabled: true
      url: ${receiver.url}/never
`,
    );
    registry = await startLainProcess(config, port);

    image = randomImage({ layers: 2, layerSize: 150_000 });
    const source = join(work, "src");
    await writeOciLayout(source, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    await skopeo("copy", "--dest-creds", `alice:${PASSWORD}`, `oci:${source}:v1`, `docker://${registry.host}/ops/app:v1`);
    await skopeo("copy", "--src-creds", `alice:${PASSWORD}`, `docker://${registry.host}/ops/app:v1`, `oci:${join(work, "out")}:v1`);
    const layer = image.layers[0]?.digest ?? "";
    const mounted = await call("POST", `${registry.url}/v2/ops/other/blobs/uploads/?mount=${layer}&from=ops/app`, { headers: auth });
    expect(mounted.status).toBe(201);
    expect((await call("DELETE", `${registry.url}/v2/ops/other/blobs/${layer}`, { headers: auth })).status).toBe(202);
    expect((await call("DELETE", `${registry.url}/v2/ops/app/manifests/v1`, { headers: auth })).status).toBe(202);
    // Refused credentials, a forged token, a pull from a peer that is down.
    expect((await call("GET", `${registry.url}/v2/ops/app/tags/list`, { headers: { authorization: basic("alice", "wrong") } })).status).toBe(401);
    expect((await call("GET", `${registry.url}/v2/ops/app/tags/list`, { headers: { authorization: `Bearer ${BOGUS_BEARER}` } })).status).toBe(401);
    expect((await call("GET", `${registry.url}/v2/mirrored/x/manifests/latest`, { headers: auth })).status).toBe(503);
    // Outside proxy.namespaces a miss is this store's alone (the peer is never asked), and says so.
    const local = await call("GET", `${registry.url}/v2/ops/app/manifests/v1`, { headers: auth });
    expect(local.status).toBe(404);
    expect(local.text).toContain("manifest v1 is unknown to ops/app, which this mirror does not pull through (not in proxy.namespaces)");
  }, 120_000);

  afterAll(async () => {
    await registry?.stop();
    receiver?.server.closeAllConnections();
    receiver?.server.close();
    await rm(work, { recursive: true, force: true });
  });

  it("returns a request id on every response, keeps one the load balancer gave, and logs it on the request's access line", async () => {
    const given = await call("GET", `${registry.url}/v2/ops/app/manifests/${image.manifest.digest}`, {
      headers: { ...auth, "x-request-id": "ops-test-req-42", accept: image.manifest.mediaType, "user-agent": "ops-test/1.0" },
    });
    expect(given.status).toBe(200);
    expect(given.headers["x-request-id"]).toBe("ops-test-req-42");
    const generated = await call("GET", `${registry.url}/v2/`);
    expect(generated.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    // A malformed id is replaced, never echoed.
    const forged = await call("GET", `${registry.url}/v2/`, { headers: { "x-request-id": "bad id\twith spaces" } });
    expect(forged.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);

    await until(() => registry.fullOutput().includes("ops-test-req-42"), "the access line");
    const lines = registry.fullOutput().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    const line = lines.find((l) => l["http.request.id"] === "ops-test-req-42");
    // distribution's field names, as dotted keys, then ours.
    expect(line).toMatchObject({
      level: 30, msg: "response completed", service: "registry", environment: "operations-test",
      "http.request.method": "GET", "http.request.uri": `/v2/ops/app/manifests/${image.manifest.digest}`,
      "http.request.host": new URL(registry.url).host, "http.request.remoteaddr": expect.stringMatching(/^127\.0\.0\.1:\d+$/), "http.request.useragent": "ops-test/1.0",
      "http.response.status": 200, "http.response.written": image.manifest.content.length, "http.response.contenttype": image.manifest.mediaType,
      "vars.name": "ops/app", "vars.reference": image.manifest.digest, "auth.user.name": "alice",
    });
    expect(line?.["http.response.duration"]).toMatch(/^\d+(\.\d+)?(ns|µs|ms|s)$/);
    expect(line?.bytesOut).toBeGreaterThan(image.manifest.content.length);
    expect(typeof line?.ms).toBe("number");
    // The upload of a layer: its bytes came in.
    const layerSize = image.layers[0]?.content.length ?? 0;
    const method = (l: Record<string, unknown>) => l["http.request.method"];
    expect(lines.some((l) => method(l) === "PUT" && String(l["http.request.uri"]).includes("/blobs/uploads/") && Number(l.bytesIn) >= layerSize) ||
      lines.some((l) => method(l) === "PATCH" && Number(l.bytesIn) >= layerSize)).toBe(true);
  });

  it("delivers push, pull, mount and delete events in distribution's envelope, retrying an endpoint that fails at first", async () => {
    const [config, layer1, layer2] = [image.config, image.layers[0], image.layers[1]].map((b) => b?.digest ?? "");
    const flaky = () => receiver.deliveries.filter((d) => d.path === "/events").flatMap((d) => d.events);
    const has = (action: string, match: Record<string, unknown>) =>
      flaky().filter((e) => e.action === action && Object.entries(match).every(([k, v]) => e.target[k] === v));
    await until(
      () =>
        has("delete", { tag: "v1" }).length === 1 && has("delete", { digest: layer1, repository: "ops/other" }).length === 1 &&
        has("mount", { digest: layer1 }).length === 1 && has("pull", { digest: layer2 }).length >= 1,
      "every event at the flaky endpoint",
    );
    expect(receiver.refused()).toBe(3);
    for (const digest of [config, layer1, layer2]) expect(has("push", { digest, repository: "ops/app", mediaType: "application/octet-stream" })).toHaveLength(1);
    const [pushed] = has("push", { digest: image.manifest.digest });
    expect(pushed).toMatchObject({
      action: "push",
      target: { mediaType: image.manifest.mediaType, size: image.manifest.content.length, length: image.manifest.content.length, repository: "ops/app", tag: "v1",
        url: `${registry.url}/v2/ops/app/manifests/${image.manifest.digest}` },
      request: { method: "PUT" },
      actor: { name: "alice" },
    });
    expect(pushed?.timestamp).toEqual(expect.any(String));
    expect((pushed?.target.references as Array<{ digest: string }>).map((r) => r.digest).sort()).toEqual([config, layer1, layer2].sort());
    expect((pushed?.source as { instanceID: string }).instanceID).toMatch(/^[0-9a-f-]{36}$/);
    expect(has("pull", { digest: image.manifest.digest, tag: "v1" }).length).toBeGreaterThanOrEqual(1);
    expect(has("mount", { digest: layer1 })[0]?.target).toMatchObject({ repository: "ops/other", fromRepository: "ops/app" });
    // Each event once, although the first three deliveries failed.
    const ids = flaky().map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    const delivery = receiver.deliveries.find((d) => d.path === "/events");
    expect(delivery?.headers["content-type"]).toBe("application/vnd.docker.distribution.events.v1+json");
    expect(delivery?.headers.authorization).toBe(`Bearer ${NOTIFY_TOKEN}`);

    // ignore.actions and ignore.mediatypes: no pulls, no blobs.
    const filtered = receiver.deliveries.filter((d) => d.path === "/pushes").flatMap((d) => d.events);
    expect(filtered.some((e) => e.action === "push" && e.target.digest === image.manifest.digest)).toBe(true);
    expect(filtered.filter((e) => e.action === "pull" || e.target.mediaType === "application/octet-stream")).toEqual([]);
    expect(receiver.deliveries.filter((d) => d.path === "/never")).toEqual([]);
  });

  it("serves Prometheus metrics on http.debug.addr (and not on the main port)", async () => {
    expect((await call("GET", `${registry.url}/metrics`)).status).toBe(404);
    const reply = await call("GET", `${debugUrl}/metrics`);
    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toContain("text/plain");
    const text = reply.body.toString("utf8");
    const layers = image.layers.reduce((n, l) => n + l.content.length, 0);
    expect(sample(text, "registry_http_requests_total", { handler: "manifest", method: "PUT", code: "201" })).toBe(1);
    expect(sample(text, "registry_http_requests_total", { handler: "manifest", method: "DELETE", code: "202" })).toBe(1);
    expect(sample(text, "registry_http_request_duration_seconds_count", { handler: "blob", method: "GET" })).toBeGreaterThanOrEqual(3);
    expect(sample(text, "registry_http_bytes_total", { handler: "blob_upload_chunk", direction: "in" }) +
      sample(text, "registry_http_bytes_total", { handler: "blob_upload", direction: "in" })).toBeGreaterThanOrEqual(layers);
    expect(sample(text, "registry_http_bytes_total", { handler: "blob", direction: "out" })).toBeGreaterThanOrEqual(layers);
    expect(sample(text, "registry_uploads_in_progress")).toBe(0);
    expect(sample(text, "registry_storage_action_seconds_count", { driver: "filesystem", action: "PutContent" })).toBeGreaterThan(0);
    expect(sample(text, "registry_storage_action_seconds_count", { driver: "filesystem", action: "Reader" })).toBeGreaterThan(0);
    expect(sample(text, "registry_auth_failures_total", { code: "UNAUTHORIZED" })).toBe(2);
    expect(sample(text, "registry_proxy_upstream_errors_total")).toBeGreaterThanOrEqual(1);
    expect(sample(text, "registry_proxy_requests_total", { kind: "manifest", result: "miss" })).toBe(1);
    expect(sample(text, "registry_notifications_status_total", { endpoint: "flaky", code: "500" })).toBe(3);
    expect(sample(text, "registry_notifications_events_total", { endpoint: "flaky", result: "failed" })).toBeGreaterThanOrEqual(3);
    expect(sample(text, "registry_notifications_events_total", { endpoint: "flaky", result: "delivered" })).toBeGreaterThanOrEqual(10);
    // The endpoint that never answers: its small queue overflowed; nobody waited on it.
    expect(sample(text, "registry_notifications_events_total", { endpoint: "hanging", result: "dropped" })).toBeGreaterThan(0);
    expect(sample(text, "registry_notifications_pending", { endpoint: "hanging" })).toBeLessThanOrEqual(3);
    expect(sample(text, "process_resident_memory_bytes")).toBeGreaterThan(0);
  });

  it("never writes a secret to the log: passwords, tokens, Authorization headers, http.secret", async () => {
    await registry.stop();
    const log = registry.fullOutput();
    expect(log).toContain('"msg":"stopped"');
    for (const secret of [PASSWORD, NOTIFY_TOKEN, PROXY_PASSWORD, HTTP_SECRET, BOGUS_BEARER, basic("alice", PASSWORD).slice(6), Buffer.from(`mirror:${PROXY_PASSWORD}`).toString("base64")]) {
      expect(log).not.toContain(secret);
    }
  });
});

describe("metrics on the main port", () => {
  it("are served at http.debug.prometheus.path when there is no debug address, and only then", async () => {
    const withMetrics = await startTestRegistry({ storage: "inmemory", extraYaml: "  debug:\n    prometheus:\n      enabled: true\n      path: /prom" });
    const without = await startTestRegistry({ storage: "inmemory" });
    try {
      expect((await call("GET", `${withMetrics.url}/v2/`)).status).toBe(200);
      const reply = await call("GET", `${withMetrics.url}/prom`);
      expect(reply.status).toBe(200);
      expect(sample(reply.body.toString("utf8"), "registry_http_requests_total", { handler: "base", method: "GET", code: "200" })).toBe(1);
      expect((await call("GET", `${without.url}/prom`)).status).toBe(404);
      expect((await call("GET", `${without.url}/metrics`)).status).toBe(404);
    } finally {
      await withMetrics.close();
      await without.close();
    }
  });
});
