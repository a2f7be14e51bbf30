import bcrypt from "bcryptjs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode } from "../helpers/http.js";
import { randomImage, sha256, writeOciLayout } from "../helpers/oci.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import { hasTool } from "../helpers/tools.js";

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
