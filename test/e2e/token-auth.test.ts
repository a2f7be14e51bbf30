import { calculateJwkThumbprint, type JWK } from "jose";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseScope, type Access } from "../../src/auth/access.js";
import { libtrustKeyId } from "../../src/auth/libtrust.js";
import { call, errorCode } from "../helpers/http.js";
import { randomImage, sha256, writeOciLayout } from "../helpers/oci.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { skopeo } from "../helpers/skopeo.js";
import {
  caSignedIdentity,
  selfSignedIdentity,
  signToken,
  startTokenServer,
  writeJwks,
  type SigningIdentity,
  type TokenServer,
} from "../helpers/token-issuer.js";
import { hasTool } from "../helpers/tools.js";

const ISSUER = "auth server";
const SERVICE = "lain.local";
const available = hasTool("skopeo") && hasTool("openssl");

describe.skipIf(!available)("Docker token auth (auth.token)", () => {
  let work: string;
  let console: SigningIdentity;
  let stranger: SigningIdentity;
  let leaf: SigningIdentity;
  let realm: TokenServer;
  let registry: TestRegistry;
  let kid: string;

  const repoAccess = (name: string, actions: string[]): Access[] => [{ type: "repository", name, actions }];
  const token = (access: Access[], extra: Partial<Parameters<typeof signToken>[1]> = {}, key = console.key) =>
    signToken(key, { issuer: ISSUER, audience: SERVICE, access, header: { kid }, ...extra });
  const get = async (path: string, bearer?: string) =>
    call("GET", `${registry.url}${path}`, bearer ? { headers: { authorization: `Bearer ${bearer}` } } : {});

  beforeAll(async () => {
    work = await tempDir("lain-token-");
    console = await selfSignedIdentity(work, "console");
    stranger = await selfSignedIdentity(work, "stranger");
    leaf = await caSignedIdentity(work, console, "leaf");
    kid = libtrustKeyId(console.certificate.publicKey);
    // The LAIN console's way: RS256, kid = libtrust key id, no x5c.
    realm = await startTokenServer({
      key: console.key,
      header: { kid },
      issuer: ISSUER,
      policy: (user, wanted) => (user === "alice" && wanted.name.startsWith("team/") ? ["pull", "push"] : user === "alice" ? ["pull"] : []),
    });
    const auth = `auth:\n  token:\n    realm: ${realm.realm}\n    service: ${SERVICE}\n    issuer: "${ISSUER}"\n    rootcertbundle: ${console.certPath}`;
    registry = await startTestRegistry({ extraYaml: auth });
  });
  afterAll(async () => {
    await registry?.close();
    await realm?.close();
    await rm(work, { recursive: true, force: true });
  });

  it("GET /v2/ answers 401 with the Bearer challenge clients discover the realm from", async () => {
    const reply = await get("/v2/");
    expect(reply.status).toBe(401);
    expect(errorCode(reply)).toBe("UNAUTHORIZED");
    expect(reply.headers["www-authenticate"]).toBe(`Bearer realm="${realm.realm}",service="${SERVICE}"`);
  });

  it("names exactly the scopes a request needs in the challenge", async () => {
    const manifest = await get("/v2/team/app/manifests/v1");
    expect(manifest.headers["www-authenticate"]).toContain('scope="repository:team/app:pull"');
    const catalog = await get("/v2/_catalog");
    expect(catalog.headers["www-authenticate"]).toContain('scope="registry:catalog:*"');
    const mount = await call("POST", `${registry.url}/v2/team/to/blobs/uploads/?mount=${sha256("x")}&from=other/from`);
    expect(mount.headers["www-authenticate"]).toContain('scope="repository:team/to:pull,push repository:other/from:pull"');
  });

  it("skopeo pushes and pulls through the whole bearer flow", async () => {
    const image = randomImage({ layers: 2 });
    const source = join(work, "src");
    await writeOciLayout(source, [{ tag: "v1", manifest: image.manifest }], [image.manifest, image.config, ...image.layers]);
    await skopeo("copy", "--dest-creds", "alice:secret", `oci:${source}:v1`, `docker://${registry.host}/team/app:v1`);
    const raw = await skopeo("inspect", "--raw", "--creds", "alice:secret", `docker://${registry.host}/team/app:v1`);
    expect(sha256(raw)).toBe(image.manifest.digest);
    expect(realm.requests.some((r) => r.user === "alice" && r.scopes.some((s) => s.startsWith("repository:team/app:") && s.includes("push")))).toBe(true);
    await expect(skopeo("copy", "--dest-creds", "alice:secret", `oci:${source}:v1`, `docker://${registry.host}/other/app:v1`)).rejects.toThrow();
  });

  it("accepts tokens whose kid is the key's RFC 7638 thumbprint, or that carry an x5c chain to the bundle", async () => {
    const access = repoAccess("team/app", ["pull"]);
    const thumbprint = await calculateJwkThumbprint(console.certificate.publicKey.export({ format: "jwk" }) as JWK);
    expect((await get("/v2/team/app/tags/list", await token(access, { header: { kid: thumbprint } }))).status).toBe(200);
    const x5c = [leaf.certificate.raw.toString("base64")];
    expect((await get("/v2/team/app/tags/list", await token(access, { header: { x5c } }, leaf.key))).status).toBe(200);
    const jwk = console.certificate.publicKey.export({ format: "jwk" }) as JWK;
    expect((await get("/v2/team/app/tags/list", await token(access, { header: { jwk } }))).status).toBe(200);
  });

  const refusals: Array<[string, () => Promise<string>, string]> = [
    ["a signature by an untrusted key", () => token(repoAccess("team/app", ["pull"]), {}, stranger.key), "invalid_token"],
    ["an untrusted embedded jwk", () => token(repoAccess("team/app", ["pull"]), { header: { jwk: stranger.certificate.publicKey.export({ format: "jwk" }) as JWK } }, stranger.key), "invalid_token"],
    ["an x5c chain to another CA", () => token(repoAccess("team/app", ["pull"]), { header: { x5c: [stranger.certificate.raw.toString("base64")] } }, stranger.key), "invalid_token"],
    ["the wrong issuer", () => token(repoAccess("team/app", ["pull"]), { issuer: "someone else" }), "invalid_token"],
    ["the wrong audience", () => token(repoAccess("team/app", ["pull"]), { audience: "other.service" }), "invalid_token"],
    ["an expired token (beyond the 60 s leeway)", () => token(repoAccess("team/app", ["pull"]), { expiresIn: -120 }), "invalid_token"],
    ["a token not valid yet", () => token(repoAccess("team/app", ["pull"]), { notBeforeIn: 600 }), "invalid_token"],
    ["alg none", async () => {
      const encode = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
      const now = Math.floor(Date.now() / 1000);
      return `${encode({ alg: "none", kid })}.${encode({ iss: ISSUER, aud: SERVICE, exp: now + 300, access: repoAccess("team/app", ["pull"]) })}.`;
    }, "invalid_token"],
    ["a token for another repository", () => token(repoAccess("team/other", ["pull"])), "insufficient_scope"],
    ["a pull-only token", () => token(repoAccess("team/app", ["pull"])), "insufficient_scope"],
  ];

  it.each(refusals)("refuses %s with 401 UNAUTHORIZED", async (_, make, error) => {
    const bearer = await make();
    const reply = error === "insufficient_scope" && _ === "a pull-only token"
      ? await call("POST", `${registry.url}/v2/team/app/blobs/uploads/`, { headers: { authorization: `Bearer ${bearer}` } })
      : await get("/v2/team/app/tags/list", bearer);
    expect(reply.status).toBe(401);
    expect(errorCode(reply)).toBe("UNAUTHORIZED");
    expect(reply.headers["www-authenticate"]).toContain(`error="${error}"`);
  });

  it("grants everything with the * action, and the catalog with registry:catalog:*", async () => {
    const all = await token(repoAccess("team/app", ["*"]));
    expect((await call("POST", `${registry.url}/v2/team/app/blobs/uploads/`, { headers: { authorization: `Bearer ${all}` } })).status).toBe(202);
    const catalog = await token([{ type: "registry", name: "catalog", actions: ["*"] }]);
    expect((await get("/v2/_catalog", catalog)).status).toBe(200);
  });

  it("splits scopes whose repository names carry host:port correctly", () => {
    expect(parseScope("repository:reg.local:5000/team/app:pull,push")).toEqual({ type: "repository", name: "reg.local:5000/team/app", actions: ["pull", "push"] });
    expect(parseScope("registry:catalog:*")).toEqual({ type: "registry", name: "catalog", actions: ["*"] });
    expect(parseScope("repository:nope")).toBeUndefined();
  });

  it("allows 60 s of clock skew on exp, as distribution does", async () => {
    const justExpired = await token(repoAccess("team/app", ["pull"]), { expiresIn: -30 });
    expect((await get("/v2/team/app/tags/list", justExpired)).status).toBe(200);
  });

  it("verifies with keys of a JWK set (auth.token.jwks), by their kid", async () => {
    const jwksPath = join(work, "jwks.json");
    await writeJwks(jwksPath, [{ ...(stranger.certificate.publicKey.export({ format: "jwk" }) as JWK), kid: "ci-key-1", use: "sig" }]);
    const withJwks = await startTestRegistry({
      extraYaml: `auth:\n  token:\n    realm: ${realm.realm}\n    service: ${SERVICE}\n    issuer: "${ISSUER}"\n    jwks: ${jwksPath}`,
    });
    try {
      const good = await token(repoAccess("team/app", ["pull"]), { header: { kid: "ci-key-1" } }, stranger.key);
      const wrongKey = await token(repoAccess("team/app", ["pull"]), { header: { kid: "ci-key-1" } }, console.key);
      const at = (bearer: string) => call("GET", `${withJwks.url}/v2/team/app/tags/list`, { headers: { authorization: `Bearer ${bearer}` } });
      expect((await at(good)).status).not.toBe(401);
      expect((await at(wrongKey)).status).toBe(401);
    } finally {
      await withJwks.close();
    }
  });

  it("with autoredirect, the realm is the registry's own host plus autoredirectpath", async () => {
    const redirecting = await startTestRegistry({
      extraYaml: `auth:\n  token:\n    realm: https://ignored.example/token\n    service: ${SERVICE}\n    issuer: "${ISSUER}"\n    rootcertbundle: ${console.certPath}\n    autoredirect: true\n    autoredirectpath: /auth/token`,
    });
    try {
      const reply = await call("GET", `${redirecting.url}/v2/`, { headers: { "x-forwarded-proto": "https", "x-forwarded-host": "registry.lain.local" } });
      expect(reply.headers["www-authenticate"]).toBe(`Bearer realm="https://registry.lain.local/auth/token",service="${SERVICE}"`);
    } finally {
      await redirecting.close();
    }
  });

  it("a cross-repository mount needs pull on the source too", async () => {
    const pushOnly = await token(repoAccess("team/to", ["pull", "push"]));
    const mount = await call("POST", `${registry.url}/v2/team/to/blobs/uploads/?mount=${sha256("x")}&from=team/from`, {
      headers: { authorization: `Bearer ${pushOnly}` },
    });
    expect(mount.status).toBe(401);
    expect(mount.json<{ errors: Array<{ detail: Access[] }> }>().errors[0]?.detail).toEqual([{ type: "repository", name: "team/from", actions: ["pull"] }]);
  });

  it("auth.token.signingalgorithms narrows the algorithms a token may use", async () => {
    const narrowed = await startTestRegistry({
      extraYaml: `auth:\n  token:\n    realm: ${realm.realm}\n    service: ${SERVICE}\n    issuer: "${ISSUER}"\n    rootcertbundle: ${console.certPath}\n    signingalgorithms: [PS256]`,
    });
    try {
      const access = repoAccess("team/app", ["pull"]);
      const rs256 = await call("GET", `${narrowed.url}/v2/team/app/tags/list`, { headers: { authorization: `Bearer ${await token(access)}` } });
      expect(rs256.status).toBe(401);
      expect(rs256.text).toContain("signing algorithm RS256 is not allowed");
      const ps256 = await call("GET", `${narrowed.url}/v2/team/app/tags/list`, { headers: { authorization: `Bearer ${await token(access, { alg: "PS256" })}` } });
      expect(ps256.status).not.toBe(401);
    } finally {
      await narrowed.close();
    }
  });
});
