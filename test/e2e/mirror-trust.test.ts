import bcrypt from "bcryptjs";
import { createHmac } from "node:crypto";
import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signSiblingRequest } from "../../src/auth/sibling-signature.js";
import { rendezvousOwner } from "../../src/proxy/siblings.js";
import { canBuildNetworks, TestNetwork, type Host, type HttpReply } from "../helpers/hosts.js";
import { METRICS_ON_MAIN_PORT, sample } from "../helpers/metrics.js";
import { randomImage, writeOciLayout, type Image } from "../helpers/oci.js";
import { cliArgs, type Supervised } from "../helpers/process.js";
import { tempDir } from "../helpers/registry.js";
import { storedBlobs } from "../helpers/store.js";
import { hasTool } from "../helpers/tools.js";
import { until } from "../helpers/until.js";

const available = ["docker-registry", "etcd", "skopeo", "curl"].every(hasTool) && canBuildNetworks();
const SECRET = "fleet-shared-secret";
const CI = { user: "ci", password: "ci-password" };
const BASIC = { authorization: `Basic ${Buffer.from(`${CI.user}:${CI.password}`).toString("base64")}` };

/**
 * A cluster network of five hosts, each a network namespace with its own NIC: the primary
 * (Debian's docker-registry, and etcd), two fleet nodes, a standby, and an attacker standing
 * where any application container of the cluster stands. Node A has the documented shape (its
 * users' listener on its own loopback, the siblings' listener on the network); node B serves its
 * users on the network without auth, said on purpose (proxy.unauthenticated). Whatever the
 * attacker sends, each node's own client keeps getting exactly the primary's image.
 */
describe.skipIf(!available)("mirror trust: nobody on the cluster network can poison, delete or read through a node mirror", () => {
  let work: string;
  let network: TestNetwork;
  let primaryHost: Host;
  let nodeA: Host;
  let nodeB: Host;
  let standbyHost: Host;
  let attacker: Host;
  let primary: Supervised;
  let primaryConfig: string;
  const services: Supervised[] = [];
  /** The primary's lain/app:v1, and lain/other:v1 (a source to mount from). */
  let app: Image;
  let other: Image;
  /** What the attacker wants nodes to run. */
  let evil: Image;
  let evilLayout: string;
  let primaryUrl: string;
  let siblingsDoorA: string;
  let usersB: string;
  let standbyUrl: string;

  const lain = (host: Host, config: string, readyUrl: string) => host.serve(process.execPath, cliArgs("serve", config), readyUrl);

  beforeAll(async () => {
    work = await tempDir("lain-trust-");
    network = await TestNetwork.create(["primary", "node-a", "node-b", "standby", "attacker"]);
    [primaryHost, nodeA, nodeB, standbyHost, attacker] = ["primary", "node-a", "node-b", "standby", "attacker"].map((n) => network.host(n)) as [Host, Host, Host, Host, Host];
    primaryUrl = `http://${primaryHost.address}:5000`;
    siblingsDoorA = `http://${nodeA.address}:5001`;
    usersB = `http://${nodeB.address}:5000`;
    standbyUrl = `http://${standbyHost.address}:5000`;

    const etcdUrl = `http://${primaryHost.address}:2379`;
    const etcdPeer = `http://${primaryHost.address}:2380`;
    services.push(
      await primaryHost.serve(
        "etcd",
        ["--name", "trust", "--data-dir", join(work, "etcd"), "--listen-client-urls", etcdUrl, "--advertise-client-urls", etcdUrl,
          "--listen-peer-urls", etcdPeer, "--initial-advertise-peer-urls", etcdPeer, "--initial-cluster", `trust=${etcdPeer}`, "--log-level", "error"],
        `${etcdUrl}/health`,
      ),
    );
    primaryConfig = join(work, "primary.yml");
    await writeFile(primaryConfig, `version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: ${join(work, "primary")}}, delete: {enabled: true}}\nhttp: {addr: "${primaryHost.address}:5000", secret: primary}\n`);
    primary = await startPrimary();

    // Node A owns some of the image's blobs and node B the others, so both doors carry a share.
    const ownedByA = (image: Image) => [image.config, ...image.layers].filter((b) => rendezvousOwner(b.digest, [siblingsDoorA, usersB]) === siblingsDoorA).length;
    do app = randomImage({ layers: 3 });
    while (ownedByA(app) === 0 || ownedByA(app) === 4);
    other = randomImage({ layers: 1 });
    evil = randomImage({ layers: 1 });
    evilLayout = join(work, "evil");
    await writeOciLayout(evilLayout, [{ tag: "v1", manifest: evil.manifest }], [evil.manifest, evil.config, ...evil.layers]);
    for (const [repo, image] of [["lain/app", app], ["lain/other", other]] as const) {
      const layout = join(work, repo.replace("/", "-"));
      await writeOciLayout(layout, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
      await expectRan(primaryHost.run("skopeo", ["copy", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${primaryHost.address}:5000/${repo}:v1`]));
    }

    /** A fleet node's configuration: its users' listener, and its siblings' one when it has its own. */
    const node = (name: string, users: string, options: { door?: string; extra?: string[] }) =>
      [
        "version: 0.1",
        "log: {level: info}",
        `storage: {filesystem: {rootdirectory: ${join(work, name)}}, delete: {enabled: true}}`,
        `etcd: {endpoints: [${etcdUrl}]}`,
        "http:",
        `  addr: "${users}"`,
        `  secret: ${SECRET}`,
        METRICS_ON_MAIN_PORT,
        `cluster: {advertise: "http://${options.door ?? users}", prefix: /lain/registry/nodes, ttl: 2s}`,
        "proxy:",
        `  remoteurl: ${primaryUrl}`,
        "  namespaces: [lain]",
        options.door ? `  siblings: {enabled: true, addr: "${options.door}"}` : "  siblings: {enabled: true}",
        "  timeouts: {connect: 2s, response: 10s, idle: 5s}",
        ...(options.extra ?? []),
      ].join("\n");
    const configA = join(work, "node-a.yml");
    await writeFile(configA, node("node-a", "127.0.0.1:5000", { door: `${nodeA.address}:5001` }));
    const configB = join(work, "node-b.yml");
    await writeFile(configB, node("node-b", `${nodeB.address}:5000`, { extra: ["  unauthenticated: true"] }));
    // The same node without saying it on purpose: refused (see the test below).
    await writeFile(join(work, "node-b-open.yml"), node("node-b-open", `${nodeB.address}:5009`, {}));
    const htpasswd = join(work, "htpasswd");
    await writeFile(htpasswd, `${CI.user}:${bcrypt.hashSync(CI.password, 5)}\n`);
    const standbyConfig = join(work, "standby.yml");
    await writeFile(standbyConfig, [
      "version: 0.1",
      "log: {level: info}",
      `storage: {filesystem: {rootdirectory: ${join(work, "standby")}}, delete: {enabled: true}}`,
      `http: {addr: "${standbyHost.address}:5000", secret: standby}`,
      `auth: {htpasswd: {realm: standby, path: ${htpasswd}}}`,
      "proxy:",
      `  remoteurl: ${primaryUrl}`,
      "  namespaces: [lain]",
      "  pushes: writeback",
      "  ttl: 1s",
      "  timeouts: {connect: 1s, response: 5s, idle: 5s}",
    ].join("\n"));
    services.push(await lain(nodeA, configA, "http://127.0.0.1:5000/v2/"));
    services.push(await lain(nodeB, configB, `${usersB}/v2/`));
    services.push(await lain(standbyHost, standbyConfig, `${standbyUrl}/v2/`));
    // Both nodes know the fleet (each other) before anything is pulled.
    await until(async () => (await siblingsKnown(nodeA, "http://127.0.0.1:5000")) === 2 && (await siblingsKnown(nodeB, usersB)) === 2, "the fleet of two nodes");
  }, 120_000);

  afterAll(async () => {
    await network?.destroy();
    await rm(work, { recursive: true, force: true });
  });

  async function startPrimary(): Promise<Supervised> {
    const env = { ...process.env };
    // distribution panics at start when AWS_CA_BUNDLE is set (it loads it for its S3 driver).
    delete env.AWS_CA_BUNDLE;
    return primaryHost.serve("docker-registry", ["serve", primaryConfig], `${primaryUrl}/v2/`, env);
  }

  async function siblingsKnown(host: Host, url: string): Promise<number> {
    const reply = await host.http("GET", `${url}/metrics`);
    return sample(reply.text, "registry_proxy_siblings");
  }

  async function expectRan(ran: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
    const done = await ran;
    expect(done.code, done.stderr).toBe(0);
    return done.stdout;
  }

  /** The manifest a node's own client (skopeo, on that node) gets for a reference, as its raw bytes. */
  async function served(host: Host, reference: string, creds?: string): Promise<string> {
    return expectRan(host.run("skopeo", ["inspect", "--tls-verify=false", "--raw", ...(creds ? ["--creds", creds] : []), `docker://${reference}`]));
  }

  /** What every node's own client must still get for lain/app:v1: the primary's manifest, byte for byte. */
  async function expectNodesServePrimary(): Promise<void> {
    const primaryManifest = app.manifest.content.toString();
    expect(await served(nodeA, "127.0.0.1:5000/lain/app:v1")).toBe(primaryManifest);
    expect(await served(nodeB, `${nodeB.address}:5000/lain/app:v1`)).toBe(primaryManifest);
  }

  function expectDenied(reply: HttpReply, says: string | RegExp): void {
    expect(reply.status, reply.text).toBe(403);
    expect(reply.text).toMatch(/"code":"DENIED"/);
    expect(reply.text).toMatch(says);
  }

  /** Every kind of write an attacker would try on lain/app, by curl from the attacker's host. */
  function writes(base: string): Array<[string, () => Promise<HttpReply>]> {
    const [layer] = app.layers as [Image["layers"][number]];
    return [
      ["a tag overwrite", () => attacker.http("PUT", `${base}/v2/lain/app/manifests/v1`, { headers: { "content-type": evil.manifest.mediaType }, body: evil.manifest.content })],
      ["an upload session", () => attacker.http("POST", `${base}/v2/lain/app/blobs/uploads/`)],
      ["a monolithic upload", () => attacker.http("POST", `${base}/v2/lain/app/blobs/uploads/?digest=${evil.config.digest}`, { headers: { "content-type": "application/octet-stream" }, body: evil.config.content })],
      ["a mount", () => attacker.http("POST", `${base}/v2/lain/app/blobs/uploads/?mount=${other.layers[0]!.digest}&from=lain/other`)],
      ["a tag delete", () => attacker.http("DELETE", `${base}/v2/lain/app/manifests/v1`)],
      ["a manifest delete", () => attacker.http("DELETE", `${base}/v2/lain/app/manifests/${app.manifest.digest}`)],
      ["a blob delete", () => attacker.http("DELETE", `${base}/v2/lain/app/blobs/${layer.digest}`)],
    ];
  }

  it("the fleet works through node A's siblings' listener: node B gets A's share of the blobs from it", async () => {
    // node B pulls first: the blobs node A owns come to it through node A's door.
    const members = [siblingsDoorA, usersB];
    const ownedByA = [app.config, ...app.layers].filter((b) => rendezvousOwner(b.digest, members) === siblingsDoorA);
    const out = join(work, "node-b-pull");
    await expectRan(nodeB.run("skopeo", ["copy", "--src-tls-verify=false", `docker://${nodeB.address}:5000/lain/app:v1`, `oci:${out}:v1`]));
    const expected = ownedByA.reduce((sum, b) => sum + b.content.length, 0);
    const siblingBytes = async () => sample((await nodeB.http("GET", `${usersB}/metrics`)).text, "registry_proxy_bytes_total", { source: "sibling" });
    await until(async () => (await siblingBytes()) >= expected, "node B's count of the bytes node A gave", 10_000).catch(() => undefined);
    expect(await siblingBytes()).toBe(expected);
    await expectNodesServePrimary();
  });

  it("node A: its users' listener is on its own loopback, and its siblings' listener refuses everything unsigned or forged", async () => {
    expect(await attacker.unreachable(`http://${nodeA.address}:5000/v2/`)).toBeDefined();
    for (const path of ["/v2/", "/v2/lain/app/manifests/v1", `/v2/lain/app/blobs/${app.layers[0]!.digest}`, "/v2/_catalog", "/health", "/metrics", "/ui/"]) {
      expectDenied(await attacker.http("GET", `${siblingsDoorA}${path}`), /takes only the signed requests of sibling mirrors/);
    }
    for (const [what, attempt] of writes(siblingsDoorA)) {
      const reply = await attempt();
      expect(reply.status, what).toBe(403);
    }
    const manifestPath = "/v2/lain/app/manifests/v1";
    const forged = {
      "another secret": signSiblingRequest("a-guess", "GET", manifestPath),
      "a malformed signature": "yes-i-am-a-sibling",
      "an old captured one": signSiblingRequest(SECRET, "GET", manifestPath, Date.now() - 60_000),
      "a signature of another path": signSiblingRequest(SECRET, "GET", "/v2/lain/other/manifests/v1"),
      "a digest the attacker computed without the key": `${Date.now()}.${createHmac("sha256", "").update(manifestPath).digest("hex")}`,
    };
    for (const [what, signature] of Object.entries(forged)) {
      const reply = await attacker.http("GET", `${siblingsDoorA}${manifestPath}`, { headers: { "x-lain-sibling": signature } });
      expect(reply.status, what).toBe(403);
    }
    // A real signature on a write is no key to it: siblings only read.
    const put = await attacker.http("PUT", `${siblingsDoorA}${manifestPath}`, {
      headers: { "x-lain-sibling": signSiblingRequest(SECRET, "PUT", manifestPath), "content-type": evil.manifest.mediaType },
      body: evil.manifest.content,
    });
    expectDenied(put, /may only read blobs and manifests/);
    const pushed = await attacker.run("skopeo", ["copy", "--dest-tls-verify=false", `oci:${evilLayout}:v1`, `docker://${nodeA.address}:5001/lain/app:v1`]);
    expect(pushed.code).not.toBe(0);
    const read = await attacker.run("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${nodeA.address}:5001/lain/app:v1`]);
    expect(read.code).not.toBe(0);
    await expectNodesServePrimary();
  });

  it("node B, open on purpose: no push, tag overwrite, mount or delete in what it mirrors; reads as the primary's", async () => {
    for (const [what, attempt] of writes(usersB)) {
      expectDenied(await attempt(), `push to ${primaryUrl}`);
      await expectNodesServePrimary().catch((err: Error) => {
        throw new Error(`after ${what}: ${err.message}`);
      });
    }
    const pushed = await attacker.run("skopeo", ["copy", "--dest-tls-verify=false", `oci:${evilLayout}:v1`, `docker://${nodeB.address}:5000/lain/app:v1`]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toContain(`push to ${primaryUrl}`);
    // Reading is what it is open for, and gives the primary's image.
    expect(await served(attacker, `${nodeB.address}:5000/lain/app:v1`)).toBe(app.manifest.content.toString());
    // Nothing the attacker sent is stored, not even a started upload.
    const storedB = await storedBlobs(join(work, "node-b"));
    for (const blob of [evil.config, ...evil.layers, evil.manifest]) expect(storedB).not.toContain(blob.digest);
    expect(await readdir(join(work, "node-b", "docker/registry/v2/repositories/lain/app/_uploads")).catch(() => [])).toEqual([]);
    // A repository it does not mirror is an ordinary registry's, as before.
    const scratch = await attacker.http("POST", `${usersB}/v2/scratch/tool/blobs/uploads/?digest=${evil.config.digest}`, { headers: { "content-type": "application/octet-stream" }, body: evil.config.content });
    expect(scratch.status).toBe(201);
    await expectNodesServePrimary();
  });

  it("a mirror that serves the network without auth, not said on purpose: config check and serve refuse it by http.addr", async () => {
    const config = join(work, "node-b-open.yml");
    const check = await nodeB.run(process.execPath, cliArgs("config", "check", config));
    expect(check.code).toBe(1);
    const line = check.stdout.split("\n").find((l) => l.startsWith("error: http.addr: "));
    expect(line, check.stdout).toContain("proxy.unauthenticated: true");
    const served = await nodeB.run(process.execPath, cliArgs("serve", config), { timeoutMs: 20_000 });
    expect(served.code).toBe(2);
    expect(served.stderr.split("\n")).toContain(`config error: ${line!.slice("error: ".length)}`);
  });

  it("the standby (auth, proxy.pushes: writeback): takes authenticated pushes only while the primary is down, and writes them back to it", async () => {
    const creds = ["--dest-creds", `${CI.user}:${CI.password}`];
    const push = (tag: string, withCreds: boolean) =>
      attacker.run("skopeo", ["copy", "--dest-tls-verify=false", ...(withCreds ? creds : []), `oci:${evilLayout}:v1`, `docker://${standbyHost.address}:5000/lain/app:${tag}`]);
    const standbyServes = (tag: string) => served(standbyHost, `${standbyHost.address}:5000/lain/app:${tag}`, `${CI.user}:${CI.password}`);
    const primaryServes = (tag: string) => served(primaryHost, `${primaryHost.address}:5000/lain/app:${tag}`).catch(() => "");

    // While the primary answers, every write is its own: refused with credentials (naming the
    // primary), and without them at the first request, whose read needs them too.
    const unauthenticated = await push("v2", false);
    expect(unauthenticated.code).not.toBe(0);
    expect(unauthenticated.stderr).toMatch(/unauthorized|authentication required/i);
    const authenticated = await push("v2", true);
    expect(authenticated.code).not.toBe(0);
    expect(authenticated.stderr).toContain(`push to ${primaryUrl}`);
    const overwrite = await attacker.http("PUT", `${standbyUrl}/v2/lain/app/manifests/v1`, { headers: { ...BASIC, "content-type": evil.manifest.mediaType }, body: evil.manifest.content });
    expectDenied(overwrite, `push to ${primaryUrl}`);
    expectDenied(await attacker.http("DELETE", `${standbyUrl}/v2/lain/app/manifests/v1`, { headers: BASIC }), `push to ${primaryUrl}`);
    expect(await standbyServes("v1")).toBe(app.manifest.content.toString());

    await primary.stop("SIGKILL");
    // The standby takes writes once it has seen the primary go (its answer is reused for a second).
    await until(async () => (await attacker.http("POST", `${standbyUrl}/v2/lain/app/blobs/uploads/`, { headers: BASIC })).status === 202, "the standby to see the primary down");
    const anonymous = await push("v2", false);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toMatch(/unauthorized|authentication required/i);
    const taken = await push("v2", true);
    expect(taken.code, taken.stderr).toBe(0);
    expect(await standbyServes("v2")).toBe(evil.manifest.content.toString());

    // The primary is back: the standby's journal reaches it, and both say the same for every tag.
    primary = await startPrimary();
    await until(async () => (await primaryServes("v2")) === evil.manifest.content.toString(), "the write-back of lain/app:v2 to the primary");
    expect(await standbyServes("v1")).toBe(app.manifest.content.toString());
    await expectNodesServePrimary();
  });
});
