import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseDuration } from "../../src/config/duration.js";
import { prepare } from "../../src/cli/prepare.js";
import { DEFAULT_CONFIG_PATH, loadConfig, parseConfig } from "../../src/config/load.js";

const EXAMPLES = join(import.meta.dirname, "../../config/examples");

function paths(problems: Array<{ path: string }>): string[] {
  return problems.map((p) => p.path);
}

describe("configuration examples", async () => {
  const files = (await readdir(EXAMPLES)).filter((f) => f.endsWith(".yml"));

  it("has the LAIN README's S3, OSS and delete examples", () => {
    expect(files).toEqual(expect.arrayContaining(["lain-s3.yml", "lain-oss.yml", "lain-delete.yml"]));
  });

  it.each(files)("%s loads", async (file) => {
    const loaded = parseConfig(await readFile(join(EXAMPLES, file), "utf8"), {});
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
  });

  it.each(files)("%s: its listeners pass what serve checks on any machine (a mirror's exposure included)", async (file) => {
    const loaded = parseConfig(await readFile(join(EXAMPLES, file), "utf8"), {});
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const { findings } = await prepare(loaded.config, "check");
    expect(findings.errors.filter((e) => e.path === "http.addr" || e.path.startsWith("proxy."))).toEqual([]);
  });

  it("the quick start configuration loads with no warning", async () => {
    const loaded = await loadConfig(DEFAULT_CONFIG_PATH, {});
    expect(loaded.ok).toBe(true);
    expect(loaded.warnings).toEqual([]);
    if (loaded.ok) expect(loaded.config.http.addr).toBe("127.0.0.1:5000");
  });

  it("reads the S3 example's values", async () => {
    const loaded = parseConfig(await readFile(join(EXAMPLES, "lain-s3.yml"), "utf8"), {});
    if (!loaded.ok) throw new Error("expected ok");
    expect(loaded.config.storage.driver).toBe("s3");
    expect(loaded.config.storage.parameters.bucket).toBe("test");
    expect(loaded.config.storage.blobDescriptorCache).toBe("inmemory");
    expect(loaded.config.http.secret).toBe("asecretforlocaldevelopment");
    expect(loaded.config.auth.token).toMatchObject({ issuer: "auth server", service: "lain.local", rootCertBundle: "/lain/app/auth/server.pem" });
    expect(loaded.config.storage.uploadPurging).toMatchObject({ enabled: false });
    expect(paths(loaded.warnings)).not.toContain("storage.s3");
  });

  it("LAIN's clean-up cron is one retention rule: the newest 200 of every repository, and latest always", async () => {
    const loaded = parseConfig(await readFile(join(EXAMPLES, "retention-lain.yml"), "utf8"), {});
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.storage.retention).toEqual({
      enabled: true,
      intervalMs: 168 * 3_600_000,
      rules: [{ repositories: ".*", keep: { always: ["latest"], tags: undefined, newestPushed: 200, newestPulled: undefined, pushedWithinMs: undefined, pulledWithinMs: undefined }, untaggedOlderThanMs: undefined, orphanReferrers: false }],
    });
    expect(loaded.config.storage.gc.enabled).toBe(true);
    expect(loaded.warnings).toEqual([]);
  });

  it("refuses a retention rule whose pattern is not a regular expression, by its key path", () => {
    const bad = parseConfig("version: 0.1\nstorage:\n  retention:\n    rules:\n      - repositories: \"lain/(\"\n        keep: {newestpushed: -1}", {});
    expect(bad.ok ? [] : paths(bad.errors)).toEqual(["storage.retention.rules[0].repositories", "storage.retention.rules[0].keep.newestpushed"]);
  });

  it("the delete fragment turns deletion on over the default filesystem store", async () => {
    const loaded = parseConfig(await readFile(join(EXAMPLES, "lain-delete.yml"), "utf8"), {});
    if (!loaded.ok) throw new Error("expected ok");
    expect(loaded.config.storage.deleteEnabled).toBe(true);
    expect(loaded.config.storage.driver).toBe("filesystem");
    expect(paths(loaded.warnings)).toEqual(expect.arrayContaining(["version", "storage"]));
  });
});

describe("proxy (the mirror)", () => {
  it("takes distribution's proxy section as is, with defaults for the rest", () => {
    const loaded = parseConfig("version: 0.1\nproxy:\n  remoteurl: https://primary.lain.local/\n  username: u\n  password: p\n  ttl: 168h", {});
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.warnings.filter((w) => w.path.startsWith("proxy"))).toEqual([]);
    expect(loaded.config.proxy).toEqual({
      remoteUrls: ["https://primary.lain.local"],
      username: "u",
      password: "p",
      ttlMs: 168 * 3_600_000,
      namespaces: [],
      prefetch: [],
      maxConnections: 32,
      spoolDir: undefined,
      timeouts: { connectMs: 5_000, responseMs: 30_000, idleMs: 60_000 },
      pushes: "refuse",
      unauthenticated: false,
      fillOnRange: true,
      siblings: { enabled: false, firstByteTimeoutMs: 500, addr: undefined, fanout: 1 },
    });
  });

  it("takes pushes in mirrored namespaces (proxy.pushes: writeback, or local, its former name) only with an auth section", () => {
    const htpasswd = "auth: {htpasswd: {realm: r, path: /etc/registry/htpasswd}}";
    for (const value of ["writeback", "local"]) {
      const standby = parseConfig(`version: 0.1\n${htpasswd}\nproxy: {remoteurl: http://primary:5000, pushes: ${value}}`, {});
      expect(standby.ok && standby.config.proxy?.pushes).toBe("writeback");
      const open = parseConfig(`version: 0.1\nproxy: {remoteurl: http://primary:5000, pushes: ${value}}`, {});
      expect(open.ok ? [] : open.errors).toEqual([{ path: "proxy.pushes", message: expect.stringContaining("needs an auth section") }]);
    }
    const typo = parseConfig("version: 0.1\nproxy: {remoteurl: http://primary:5000, pushes: yes}", {});
    expect(typo.ok ? [] : paths(typo.errors)).toEqual(["proxy.pushes"]);
  });

  it("takes a siblings' listener on a port of its own, and says when it has nothing to serve", () => {
    const fleet = "etcd: {endpoints: [http://127.0.0.1:2379]}\ncluster: {role: mirror, advertise: 'http://10.0.0.5:5001'}";
    const door = parseConfig(`version: 0.1\nhttp: {addr: '127.0.0.1:5000', secret: s}\n${fleet}\nproxy: {remoteurl: http://p, siblings: {enabled: true, addr: ':5001'}}`, {});
    expect(door.ok && door.config.proxy?.siblings.addr).toBe(":5001");
    const clash = parseConfig(`version: 0.1\nhttp: {addr: ':5000', secret: s}\n${fleet}\nproxy: {remoteurl: http://p, siblings: {enabled: true, addr: '10.0.0.5:5000'}}`, {});
    expect(clash.ok ? [] : paths(clash.errors)).toEqual(["proxy.siblings.addr"]);
    const bad = parseConfig(`version: 0.1\nhttp: {secret: s}\n${fleet}\nproxy: {remoteurl: http://p, siblings: {enabled: true, addr: '5001'}}`, {});
    expect(bad.ok ? [] : paths(bad.errors)).toEqual(["proxy.siblings.addr"]);
    const idle = parseConfig("version: 0.1\nproxy: {remoteurl: http://p, siblings: {addr: ':5001'}}", {});
    expect(idle.warnings.find((w) => w.path === "proxy.siblings.addr")?.message).toMatch(/no effect without proxy.siblings.enabled/);
  });

  it("proxy.siblings.fanout: 1 by default, a whole number of at least 1", () => {
    const fleet = "etcd: {endpoints: [http://127.0.0.1:2379]}\ncluster: {role: mirror, advertise: 'http://10.0.0.5:5000'}\nhttp: {secret: s}";
    const plain = parseConfig(`version: 0.1\n${fleet}\nproxy: {remoteurl: http://p, siblings: {enabled: true}}`, {});
    expect(plain.ok && plain.config.proxy?.siblings.fanout).toBe(1);
    const two = parseConfig(`version: 0.1\n${fleet}\nproxy: {remoteurl: http://p, siblings: {enabled: true, fanout: 2}}`, {});
    expect(two.ok && two.config.proxy?.siblings.fanout).toBe(2);
    for (const wrong of ["0", "-1", "1.5"]) {
      const refused = parseConfig(`version: 0.1\n${fleet}\nproxy: {remoteurl: http://p, siblings: {enabled: true, fanout: ${wrong}}}`, {});
      expect(refused.ok ? [] : paths(refused.errors), wrong).toContain("proxy.siblings.fanout");
    }
  });

  it("takes a list of equivalent upstreams, as a YAML list or comma-separated, each checked", () => {
    const listed = parseConfig("version: 0.1\nproxy:\n  remoteurl: [http://primary:5000/, http://standby:5000]", {});
    expect(listed.ok && listed.config.proxy?.remoteUrls).toEqual(["http://primary:5000", "http://standby:5000"]);
    const env = parseConfig("version: 0.1", { REGISTRY_PROXY_REMOTEURL: "http://a:5000,http://b:5000" });
    expect(env.ok && env.config.proxy?.remoteUrls).toEqual(["http://a:5000", "http://b:5000"]);
    const bad = parseConfig("version: 0.1\nproxy:\n  remoteurl: [http://primary:5000, 'ftp://x']", {});
    expect(bad.ok ? [] : paths(bad.errors)).toEqual(["proxy.remoteurl[1]"]);
    const empty = parseConfig("version: 0.1\nproxy:\n  remoteurl: []", {});
    expect(empty.ok).toBe(false);
  });

  it("takes proxy.siblings only with a mirror's cluster section, etcd and a shared http.secret", () => {
    const fleet = [
      "version: 0.1",
      "http: {secret: shared}",
      "etcd: {endpoints: [http://127.0.0.1:2379]}",
      "cluster: {advertise: 'http://10.0.0.5:5000'}",
      "proxy: {remoteurl: http://primary:5000, siblings: {enabled: true, firstbytetimeout: 300ms}}",
    ];
    const loaded = parseConfig(fleet.join("\n"), {});
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.proxy?.siblings).toEqual({ enabled: true, firstByteTimeoutMs: 300, addr: undefined, fanout: 1 });
    const without = (index: number) => parseConfig(fleet.filter((_, i) => i !== index).join("\n"), {});
    for (const [index, needs] of [[1, /http\.secret/], [3, /cluster section/]] as const) {
      const refused = without(index);
      expect(refused.ok).toBe(false);
      if (!refused.ok) expect(refused.errors.find((e) => e.path === "proxy.siblings.enabled")?.message).toMatch(needs);
    }
    const primary = parseConfig(fleet.join("\n").replace("cluster: {", "cluster: {role: primary, "), {});
    expect(primary.ok ? [] : paths(primary.errors)).toEqual(["proxy.siblings.enabled"]);
  });

  it("reads the mirror example's extensions", async () => {
    const loaded = parseConfig(await readFile(join(EXAMPLES, "mirror.yml"), "utf8"), {});
    if (!loaded.ok) throw new Error("expected ok");
    expect(loaded.warnings).toEqual([]);
    expect(loaded.config.proxy).toMatchObject({ ttlMs: 300_000, namespaces: ["lain", "library"], prefetch: ["lain/registry:latest", "lain/webrouter:latest"] });
    // Open (no auth, deletes on): so it serves its own node only.
    expect(loaded.config.http.addr).toBe("127.0.0.1:5000");
    expect(loaded.config.auth).toEqual({});
  });

  it("refuses a proxy without a usable remoteurl, bad prefetch references and a zero pool", () => {
    const loaded = parseConfig("version: 0.1\nproxy:\n  remoteurl: ftp://x\n  prefetch: [lain/app, 'lain/app:v1', 'Bad:v1']\n  maxconnections: 0\n  ttl: soon", {});
    expect(loaded.ok).toBe(false);
    if (loaded.ok) return;
    expect(paths(loaded.errors).sort()).toEqual(["proxy.maxconnections", "proxy.prefetch[0]", "proxy.prefetch[2]", "proxy.remoteurl", "proxy.ttl"]);
    const missing = parseConfig("version: 0.1\nproxy: {username: u}", {});
    expect(missing.ok ? [] : paths(missing.errors)).toEqual(["proxy.remoteurl"]);
  });

  it("takes REGISTRY_PROXY_REMOTEURL from the environment", () => {
    const loaded = parseConfig("version: 0.1", { REGISTRY_PROXY_REMOTEURL: "http://127.0.0.1:5001" });
    expect(loaded.ok && loaded.config.proxy?.remoteUrls).toEqual(["http://127.0.0.1:5001"]);
  });
});

describe("cluster (etcd announce)", () => {
  it("reads the section with its defaults; the role follows a proxy section when not given", () => {
    const loaded = parseConfig("version: 0.1\netcd: {endpoints: [http://127.0.0.1:2379]}\nproxy: {remoteurl: http://p}\ncluster: {advertise: 'http://10.0.0.5:5000/'}", {});
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.warnings.filter((w) => w.path.startsWith("cluster"))).toEqual([]);
    expect(loaded.config.cluster).toEqual({ role: "mirror", advertise: "http://10.0.0.5:5000", prefix: "/lain/registry/instances", drainMs: 30_000, leaseSeconds: 5 });
  });

  it("needs etcd and an advertise URL", () => {
    const loaded = parseConfig("version: 0.1\ncluster: {role: primary, advertise: '10.0.0.5:5000'}", {});
    expect(loaded.ok ? [] : paths(loaded.errors).sort()).toEqual(["cluster", "cluster.advertise"]);
  });
});

describe("validation", () => {
  it("lists every wrong value by its key path", () => {
    const loaded = parseConfig(
      [
        "version: 0.2",
        "log: {level: loud}",
        "storage:",
        "  filesystem: {rootdirectory: /x}",
        "  delete: {enabled: maybe}",
        "http: {addr: 5, headers: {X-A: 3}}",
        "catalog: {maxentries: many}",
      ].join("\n"),
      {},
    );
    expect(loaded.ok).toBe(false);
    if (loaded.ok) return;
    expect(paths(loaded.errors).sort()).toEqual(
      ["catalog.maxentries", "http.addr", "http.headers.X-A", "log.level", "storage.delete.enabled", "version"].sort(),
    );
  });

  it("refuses two storage drivers and unsupported ones", () => {
    const two = parseConfig("version: 0.1\nstorage: {filesystem: {}, inmemory: {}}", {});
    expect(two.ok).toBe(false);
    const azure = parseConfig("version: 0.1\nstorage: {azure: {}}", {});
    expect(azure.ok ? [] : paths(azure.errors)).toEqual(["storage.azure"]);
  });

  it("checks the auth section: one access controller, with its required keys", () => {
    const both = parseConfig("version: 0.1\nstorage: {inmemory: {}}\nauth:\n  token: {realm: r, service: s, issuer: i, rootcertbundle: /b}\n  htpasswd: {realm: r, path: /p}", {});
    expect(both.ok ? [] : paths(both.errors)).toEqual(["auth"]);
    const incomplete = parseConfig("version: 0.1\nstorage: {inmemory: {}}\nauth:\n  token: {realm: r}", {});
    expect(incomplete.ok ? [] : paths(incomplete.errors).sort()).toEqual(["auth.token", "auth.token.issuer", "auth.token.service"]);
    const htpasswd = parseConfig("version: 0.1\nstorage: {inmemory: {}}\nauth:\n  htpasswd: {realm: r, path: /etc/htpasswd}", {});
    expect(htpasswd.ok && htpasswd.config.auth).toEqual({ htpasswd: { realm: "r", path: "/etc/htpasswd" } });
  });

  it.each([
    ["log:\n  levle: debug", "log.levle", "unknown key; did you mean log.level?"],
    ["storage:\n  filesystem: {rootdirectry: /srv/registry}", "storage.filesystem.rootdirectry", "unknown key; did you mean storage.filesystem.rootdirectory?"],
    ["storage:\n  inmemory: {}\n  delete: {enable: true}", "storage.delete.enable", "unknown key; did you mean storage.delete.enabled?"],
    ["htpp:\n  addr: 127.0.0.1:5010", "htpp", "unknown key; did you mean http?"],
    ["storage:\n  filesytem: {}", "storage.filesytem", "is not a storage driver of this version (filesystem, inmemory, s3, oss); did you mean storage.filesystem?"],
    ["rootdirectory: /srv/registry", "rootdirectory", "unknown key; it belongs at storage.filesystem.rootdirectory or storage.s3.rootdirectory"],
    ["http:\n  frobnicate: true", "http.frobnicate", "unknown key"],
  ])("refuses the unknown key in %j, naming what it likely meant", (yaml, path, message) => {
    const loaded = parseConfig(`version: 0.1\n${yaml}\n`, {});
    if (loaded.ok) throw new Error("expected the unknown key to be refused");
    expect(loaded.errors).toContainEqual({ path, message });
  });

  it("warns, and serves, for keys of distribution's that this version deliberately ignores", () => {
    const loaded = parseConfig("version: 0.1\nstorage: {inmemory: {}}\npolicy: {repository: {classes: [image]}}\nhttp: {h2c: {enabled: true}}\n", {});
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(paths(loaded.warnings)).toEqual(expect.arrayContaining(["policy", "http.h2c"]));
  });

  it("lists every unknown key of a file in one run", () => {
    const loaded = parseConfig("version: 0.1\nlog: {levle: debug}\nstorage: {filesystem: {rootdirectry: /x}, delete: {enable: true}}\nhtpp: {addr: ':5010'}\n", {});
    expect(loaded.ok ? [] : paths(loaded.errors).sort()).toEqual(["htpp", "log.levle", "storage.delete.enable", "storage.filesystem.rootdirectry"]);
  });

  it("reports YAML syntax errors with their position", () => {
    const loaded = parseConfig("version: 0.1\nstorage: [unclosed", {});
    expect(loaded.ok).toBe(false);
    if (!loaded.ok) expect(loaded.errors[0]?.path).toMatch(/line \d+/);
  });

  it.each(["@", "`"])("names the real cause of a value starting with %s unquoted, and its line, without the value", (c) => {
    const loaded = parseConfig(`version: 0.1\nproxy:\n  remoteurl: http://peer\n  password: ${c}s3cret\n`, {});
    if (loaded.ok) throw new Error("expected a YAML error");
    expect(loaded.errors[0]?.path).toMatch(/^line 4,/);
    expect(loaded.errors[0]?.message).toBe(`not valid YAML: the value of password starts with "${c}", which YAML reserves: quote it (password: "${c}...")`);
    expect(loaded.errors[0]?.message).not.toContain("s3cret");
  });


  it("reads YAML 1.2 with merge keys; one document only; nothing but comments is an empty map", () => {
    const merged = parseConfig("version: 0.1\nx-auth: &auth {username: u, password: p}\nstorage: {inmemory: {}}\nproxy:\n  <<: *auth\n  remoteurl: http://peer\n", {});
    if (!merged.ok) throw new Error(JSON.stringify(merged.errors));
    expect(merged.config.proxy).toMatchObject({ username: "u", password: "p" });
    const two = parseConfig("version: 0.1\nstorage: {inmemory: {}}\n---\nversion: 0.1\n", {});
    expect(two.ok).toBe(false);
    if (!two.ok) expect(two.errors[0]?.message).toMatch(/single document/);
    const [empty, braces] = [parseConfig("# nothing here\n", {}), parseConfig("{}", {})];
    if (!empty.ok || !braces.ok) throw new Error("an empty configuration is the defaults");
    // Without http.secret each load draws its own.
    const unsalted = (c: typeof empty.config) => ({ ...c, http: { ...c.http, secret: "" } });
    expect(unsalted(empty.config)).toEqual(unsalted(braces.config));
    // YAML 1.1's yes is a string in 1.2; a boolean key reads it as distribution's YAML 1.1 does.
    const yes = parseConfig("version: 0.1\nstorage: {inmemory: {}, delete: {enabled: yes}}\n", {});
    expect(yes.ok && yes.config.storage.deleteEnabled).toBe(true);
    expect(parseConfig("version: 0.1\nstorage: {inmemory: {}, delete: {enabled: sure}}\n", {}).ok).toBe(false);
  });
  it("storage.oss.internal: a boolean, or the LAIN README's sentence, which means false and is said to", () => {
    const sample = parseConfig("version: 0.1\nstorage: {oss: {bucket: b, accesskeyid: k, accesskeysecret: s, internal: optional internal endpoint}}", {});
    if (!sample.ok) throw new Error(JSON.stringify(sample.errors));
    expect(sample.warnings.find((w) => w.path === "storage.oss.internal")?.message).toMatch(/is not true or false: the public endpoint is used/);
    const real = parseConfig("version: 0.1\nstorage: {oss: {bucket: b, accesskeyid: k, accesskeysecret: s, internal: true}}", {});
    if (!real.ok) throw new Error(JSON.stringify(real.errors));
    expect(real.warnings.map((w) => w.path)).not.toContain("storage.oss.internal");
    expect(real.config.storage.parameters.internal).toBe(true);
  });
});

describe("REGISTRY_* environment overrides", () => {
  const base = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\nhttp:\n  addr: :5000\n";

  it("override nested keys as distribution does", () => {
    const loaded = parseConfig(base, {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: "/srv/registry",
      REGISTRY_HTTP_ADDR: "127.0.0.1:6000",
      REGISTRY_STORAGE_DELETE_ENABLED: "true",
      REGISTRY_HTTP_SECRET: "0123",
    });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.storage.parameters.rootdirectory).toBe("/srv/registry");
    expect(loaded.config.http.addr).toBe("127.0.0.1:6000");
    expect(loaded.config.storage.deleteEnabled).toBe(true);
    expect(loaded.config.http.secret).toBe("0123");
  });

  it("configure the etcd overlay like every other key", () => {
    const loaded = parseConfig(base, { REGISTRY_ETCD_ENDPOINTS: "http://10.0.0.1:2379,http://10.0.0.2:2379", REGISTRY_ETCD_AUTHKEY: "/custom/key" });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.etcd).toEqual({ endpoints: ["http://10.0.0.1:2379", "http://10.0.0.2:2379"], authKey: "/custom/key", readOnlyKey: "/lain/config/registry/readonly" });
    const none = parseConfig(base, {});
    expect(none.ok && none.config.etcd).toBeUndefined();
  });

  it("REGISTRY_STORAGE switches the driver", () => {
    const loaded = parseConfig(base, { REGISTRY_STORAGE: "inmemory" });
    expect(loaded.ok && loaded.config.storage.driver).toBe("inmemory");
  });

  it("a wrong value from the environment is refused with its key path", () => {
    const loaded = parseConfig(base, { REGISTRY_STORAGE_DELETE_ENABLED: "perhaps" });
    expect(loaded.ok ? [] : paths(loaded.errors)).toEqual(["storage.delete.enabled"]);
  });

  it("warns about variables that name no key", () => {
    const loaded = parseConfig(base, { REGISTRY_NOPE_X: "1" });
    expect(paths(loaded.warnings)).toContain("REGISTRY_NOPE_X");
  });
});

describe("durations", () => {
  it("parses Go durations into milliseconds", () => {
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("300ms")).toBe(300);
    expect(parseDuration("2.5s")).toBe(2500);
    expect(parseDuration("10")).toBeUndefined();
    expect(parseDuration("soon")).toBeUndefined();
  });
});

describe("operations settings", () => {
  it("reads the operations example: log fields, the debug listener, an endpoint with its defaults filled", async () => {
    const loaded = parseConfig(await readFile(join(EXAMPLES, "operations.yml"), "utf8"), {});
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.warnings).toEqual([]);
    expect(loaded.config.log).toMatchObject({ formatter: "json", fields: { service: "registry", environment: "production" } });
    expect(loaded.config.debug).toEqual({ addr: "127.0.0.1:5001", metricsPath: "/metrics" });
    expect(loaded.config.notifications).toEqual({
      includeReferences: true,
      endpoints: [{
        name: "audit", url: "https://audit.lain.local/registry-events", headers: { Authorization: ["Bearer change-me"] },
        timeoutMs: 1000, threshold: 5, backoffMs: 2000, ignoredMediaTypes: [], ignoredActions: ["pull"], queueSize: 10_000,
      }],
    });
  });

  it("merges ignoredmediatypes with ignore.mediatypes, leaves out disabled endpoints, and has no notifier without endpoints", () => {
    const loaded = parseConfig(`version: 0.1
notifications:
  endpoints:
    - {name: a, url: "http://127.0.0.1:1/e", ignoredmediatypes: [x/old], ignore: {mediatypes: [x/new]}}
    - {name: b, url: "http://127.0.0.1:1/e", disabled: true}
`, {});
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.notifications?.endpoints.map((e) => [e.name, e.ignoredMediaTypes])).toEqual([["a", ["x/old", "x/new"]]]);
    const none = parseConfig("version: 0.1\nnotifications: {endpoints: [{name: b, url: 'http://h/e', disabled: true}]}\n", {});
    expect(none.ok && none.config.notifications).toBeUndefined();
  });

  it("refuses an endpoint without a name or an http(s) url, and two endpoints of one name", () => {
    const loaded = parseConfig(`version: 0.1
notifications:
  endpoints:
    - {url: "http://127.0.0.1:1/e"}
    - {name: a, url: "ftp://h/e"}
    - {name: a, url: "http://h/e", timeout: soon}
`, {});
    expect(loaded.ok).toBe(false);
    if (loaded.ok) return;
    expect(paths(loaded.errors).sort()).toEqual(["notifications.endpoints[0].name", "notifications.endpoints[1].url", "notifications.endpoints[2].name", "notifications.endpoints[2].timeout"]);
  });

  it("metrics stay off without http.debug.prometheus.enabled; log.formatter unset means decide by terminal", () => {
    const loaded = parseConfig("version: 0.1\nhttp: {debug: {addr: '127.0.0.1:5001'}}\n", {});
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.debug).toEqual({ addr: "127.0.0.1:5001", metricsPath: undefined });
    expect(loaded.config.log.formatter).toBeUndefined();
  });
});

describe("console", () => {
  it("is off unless enabled, under /ui/ unless console.path says otherwise; the quick start turns it on", async () => {
    const off = parseConfig("version: 0.1\n", {});
    expect(off.ok && off.config.console).toEqual({ enabled: false, path: "/ui/" });
    const moved = parseConfig("version: 0.1\nconsole: {enabled: true, path: /admin/console}\n", {});
    expect(moved.ok && moved.config.console).toEqual({ enabled: true, path: "/admin/console/" });
    const quick = await loadConfig(DEFAULT_CONFIG_PATH, {});
    expect(quick.ok && quick.config.console.enabled).toBe(true);
  });
});
