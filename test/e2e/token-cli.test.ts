import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../helpers/http.js";
import { runCli } from "../helpers/process.js";
import { startTestRegistry, tempDir, type TestRegistry } from "../helpers/registry.js";
import { selfSignedIdentity } from "../helpers/token-issuer.js";
import { hasTool } from "../helpers/tools.js";

describe.skipIf(!hasTool("openssl"))("lain-registry token issue", () => {
  let work: string;
  let registry: TestRegistry;
  let keyPath: string;

  beforeAll(async () => {
    work = await tempDir("lain-token-cli-");
    const identity = await selfSignedIdentity(work, "ci-signer");
    keyPath = join(work, "ci-signer.key");
    registry = await startTestRegistry({
      extraYaml: `auth:\n  token:\n    realm: http://127.0.0.1:1/token\n    service: lain.local\n    issuer: ci\n    rootcertbundle: ${identity.certPath}`,
    });
  });
  afterAll(async () => {
    await registry?.close();
    await rm(work, { recursive: true, force: true });
  });

  it("prints a token the registry accepts for exactly the scopes it names", async () => {
    const { code, stdout } = await runCli(
      "token", "issue", "--key", keyPath, "--issuer", "ci", "--service", "lain.local", "--sub", "deploy-bot",
      "--scope", "repository:ci/app:pull,push", "--ttl", "10m",
    );
    expect(code).toBe(0);
    const headers = { authorization: `Bearer ${stdout.trim()}` };
    expect((await call("POST", `${registry.url}/v2/ci/app/blobs/uploads/`, { headers })).status).toBe(202);
    expect((await call("GET", `${registry.url}/v2/other/app/tags/list`, { headers })).status).toBe(401);
  });

  it("refuses bad arguments with the usage", async () => {
    const missing = await runCli("token", "issue", "--key", keyPath);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--issuer is required");
    const badScope = await runCli("token", "issue", "--key", keyPath, "--issuer", "i", "--service", "s", "--sub", "x", "--scope", "nonsense");
    expect(badScope.code).toBe(2);
    expect(badScope.stderr).toContain("invalid scope");
  });
});
