import bcrypt from "bcryptjs";
import { execFile } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode } from "../helpers/http.js";
import { freePort, runCli, startLainProcess } from "../helpers/process.js";
import { randomImage, sha256, writeOciLayout } from "../helpers/oci.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { hasTool } from "../helpers/tools.js";
import { promisify } from "node:util";

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });

describe.skipIf(!hasTool("skopeo"))("htpasswd auth (auth.htpasswd)", () => {
  let work: string;
  let file: string;
  let registry: TestRegistry;

  beforeAll(async () => {
    work = await tempDir("lain-htpasswd-");
    file = join(work, "htpasswd");
    // htpasswd -B writes $2y$ hashes; bcryptjs writes $2b$: both must work.
    await writeFile(file, `alice:${bcrypt.hashSync("wonderland", 5).replace(/^\$2b\$/, "$2y$")}\nplain:notbcrypt\n`);
    registry = await startTestRegistry({ extraYaml: `auth:\n  htpasswd:\n    realm: lain-registry\n    path: ${file}` });
  });
  afterAll(async () => {
    await registry?.close();
    await rm(work, { recursive: true, force: true });
  });

  it("asks for Basic credentials", async () => {
    const reply = await call("GET", `${registry.url}/v2/`);
    expect(reply.status).toBe(401);
    expect(reply.headers["www-authenticate"]).toBe('Basic realm="lain-registry"');
    expect(errorCode(reply)).toBe("UNAUTHORIZED");
    const health = await call("GET", `${registry.url}/health`);
    expect(health.status).toBe(200);
    expect(health.json()).toMatchObject({ auth: { mode: "htpasswd", source: "file" } });
  });

  it("skopeo pushes and pulls with the right credentials", async () => {
    const image = randomImage({ layers: 1 });
    const source = join(work, "src");
    await writeOciLayout(source, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    await skopeo("copy", "--dest-creds", "alice:wonderland", `oci:${source}:v1`, `docker://${registry.host}/basic/app:v1`);
    expect(sha256(await skopeo("inspect", "--raw", "--creds", "alice:wonderland", `docker://${registry.host}/basic/app:v1`))).toBe(image.manifest.digest);
  });

  it("refuses a wrong password, an unknown user and non-bcrypt entries", async () => {
    for (const [user, password] of [["alice", "guess"], ["mallory", "wonderland"], ["plain", "notbcrypt"]] as const) {
      const reply = await call("GET", `${registry.url}/v2/`, { headers: basic(user, password) });
      expect(reply.status).toBe(401);
    }
  });

  it("reads the file again when it changes: a new user works without a restart", async () => {
    expect((await call("GET", `${registry.url}/v2/`, { headers: basic("bob", "builder") })).status).toBe(401);
    await writeFile(file, `alice:${bcrypt.hashSync("wonderland", 5)}\nbob:${bcrypt.hashSync("builder", 5)}\n`);
    expect((await call("GET", `${registry.url}/v2/`, { headers: basic("bob", "builder") })).status).toBe(200);
  });
});

/** A line of the file, as Apache's htpasswd writes it with one of its hashing options. */
async function htpasswdLine(option: string, user: string, password: string): Promise<string> {
  const { stdout } = await promisify(execFile)("htpasswd", ["-nb", option, user, password]);
  return stdout.trim();
}

describe.skipIf(!hasTool("htpasswd"))("htpasswd files as Apache's htpasswd writes them", () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir("lain-htpasswd-formats-");
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  const configWith = async (name: string, lines: string[], extraYaml = "") => {
    const file = join(work, `${name}.htpasswd`);
    await writeFile(file, `# made by htpasswd\n${lines.join("\n")}\n`);
    const config = join(work, `${name}.yml`);
    await writeFile(config, `version: 0.1\nstorage: {filesystem: {rootdirectory: ${join(work, "store")}}}\nhttp: {addr: "127.0.0.1:0", secret: s}\nauth:\n  htpasswd: {realm: r, path: ${file}}\n${extraYaml}`);
    return { file, config };
  };

  it.each([
    ["-m", "an MD5 entry ($apr1$, what plain `htpasswd` writes)"],
    ["-s", "a SHA-1 entry ({SHA}, htpasswd -s)"],
    ["-5", "a SHA-2 crypt entry ($5$ or $6$, htpasswd -2 or -5)"],
    ["-d", "a crypt or plain-text entry (htpasswd -d or -p)"],
    ["-p", "a crypt or plain-text entry (htpasswd -d or -p)"],
  ])("a file of %s entries only is refused by config check and by serve, naming the line", async (option, format) => {
    const { file, config } = await configWith(`only${option}`, [await htpasswdLine(option, "alice", "secret")]);
    const message = `auth.htpasswd.path: ${file} has no bcrypt entry, so nobody could log in: line 2 (alice): ${format}; only bcrypt is supported, as in distribution (htpasswd -B)`;
    const check = await runCli("config", "check", config);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain(`error: ${message}`);
    expect(check.stdout).not.toContain(": OK");
    const serve = await runCli("serve", config);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toContain(message);
  });

  it("a file with a bcrypt entry serves; its other entries are named as users who cannot log in", async () => {
    const { file, config } = await configWith("mixed", [await htpasswdLine("-m", "alice", "secret"), await htpasswdLine("-B", "bob", "builder")]);
    const check = await runCli("config", "check", config);
    expect(check.code).toBe(0);
    expect(check.stdout).toContain(`warning: auth.htpasswd.path: ${file} line 2 (alice): an MD5 entry`);
    expect(check.stdout.trimEnd().split("\n").at(-1)).toMatch(/: OK \(/);
  });

  it("a refused request's access line names the attempted user and the reason; the client hears the same for each", async () => {
    const { config } = await configWith("serve", [await htpasswdLine("-B", "bob", "builder")], "log: {level: info, formatter: json}\n");
    const server = await startLainProcess(config, await freePort());
    try {
      const attempts: Array<[Record<string, string>, string, string | undefined]> = [
        [{}, "no credentials", undefined],
        [basic("bob", "guess"), "wrong password", "bob"],
        [basic("mallory", "builder"), "unknown user", "mallory"],
        [{ authorization: "Bearer abc" }, "the authorization header is not Basic", undefined],
      ];
      for (const [headers] of attempts) {
        const reply = await call("POST", `${server.url}/v2/team/app/blobs/uploads/`, { headers });
        expect(reply.status).toBe(401);
        expect(errorCode(reply)).toBe("UNAUTHORIZED");
      }
      expect((await call("GET", `${server.url}/v2/`, { headers: basic("bob", "builder") })).status).toBe(200);
      // The access log is written asynchronously: read it once every line is there.
      const accessLines = () =>
        server.fullOutput().split("\n").filter((l) => l.includes('"response completed"')).map((l) => JSON.parse(l) as Record<string, unknown>);
      const pushes = () => accessLines().filter((l) => l["http.request.method"] === "POST");
      const accepted = () => accessLines().filter((l) => l["http.response.status"] === 200);
      await expect.poll(() => [pushes().length, accepted().length]).toEqual([attempts.length, 1]);
      expect(pushes().map((l) => [l["http.response.status"], l["auth.refused"], l["auth.user.attempted"]])).toEqual(attempts.map(([, reason, user]) => [401, reason, user]));
      expect(accepted().map((l) => [l["auth.user.name"], l["auth.refused"], l["auth.user.attempted"]])).toEqual([["bob", undefined, undefined]]);
    } finally {
      await server.stop();
    }
  });
});
