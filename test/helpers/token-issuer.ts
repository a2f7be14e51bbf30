import { execFile } from "node:child_process";
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { promisify } from "node:util";
import { SignJWT, type JWTHeaderParameters } from "jose";
import { parseScope, type Access } from "../../src/auth/access.js";

const run = promisify(execFile);

export interface SigningIdentity {
  key: KeyObject;
  certificate: X509Certificate;
  certPath: string;
}

/** A self-signed RSA certificate and key made by openssl, as an auth server's would be. */
export async function selfSignedIdentity(dir: string, name: string): Promise<SigningIdentity> {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.pem`);
  await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "2", "-subj", `/CN=${name}`]);
  return { key: createPrivateKey(await readFile(keyPath)), certificate: new X509Certificate(await readFile(certPath)), certPath };
}

/** A CA and a leaf it signed (for x5c chains): the bundle holds the CA only. */
export async function caSignedIdentity(dir: string, ca: SigningIdentity, name: string): Promise<SigningIdentity> {
  const keyPath = join(dir, `${name}.key`);
  const csrPath = join(dir, `${name}.csr`);
  const certPath = join(dir, `${name}.pem`);
  const caKey = join(dir, `${ca.certificate.subject.replace(/^CN=/, "")}.key`);
  await run("openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", csrPath, "-subj", `/CN=${name}`]);
  await run("openssl", ["x509", "-req", "-in", csrPath, "-CA", ca.certPath, "-CAkey", caKey, "-CAcreateserial", "-out", certPath, "-days", "2"]);
  return { key: createPrivateKey(await readFile(keyPath)), certificate: new X509Certificate(await readFile(certPath)), certPath };
}

export interface TokenClaims {
  issuer: string;
  audience: string | string[];
  subject?: string;
  access: Access[];
  /** Seconds from now; negative for a token already expired. */
  expiresIn?: number;
  notBeforeIn?: number;
  header: Partial<JWTHeaderParameters>;
  alg?: string;
}

export async function signToken(key: KeyObject, claims: TokenClaims): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ access: claims.access })
    .setProtectedHeader({ alg: claims.alg ?? "RS256", typ: "JWT", ...claims.header })
    .setIssuer(claims.issuer)
    .setAudience(claims.audience)
    .setSubject(claims.subject ?? "tester")
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.expiresIn ?? 300));
  if (claims.notBeforeIn !== undefined) jwt.setNotBefore(now + claims.notBeforeIn);
  return jwt.sign(key);
}

export interface TokenServer {
  realm: string;
  /** Requests the server answered, for tests that check what clients asked. */
  requests: Array<{ user: string | undefined; scopes: string[] }>;
  close(): Promise<void>;
}

/**
 * The realm: answers GET /token?service=&scope= as Docker's token spec says, granting what
 * `policy` allows the user (from Basic credentials) of what was asked.
 */
export async function startTokenServer(options: {
  key: KeyObject;
  header: Partial<JWTHeaderParameters>;
  issuer: string;
  policy: (user: string | undefined, wanted: Access) => string[];
}): Promise<TokenServer> {
  const requests: TokenServer["requests"] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://realm.invalid");
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const user = basic ? Buffer.from(basic, "base64").toString().split(":")[0] : undefined;
    const scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter(Boolean);
    requests.push({ user, scopes });
    const access = scopes
      .map(parseScope)
      .filter((a): a is Access => a !== undefined)
      .map((wanted) => ({ ...wanted, actions: wanted.actions.filter((action) => options.policy(user, wanted).includes(action)) }));
    signToken(options.key, { issuer: options.issuer, audience: url.searchParams.get("service") ?? "", subject: user ?? "anonymous", access, header: options.header }).then(
      (token) => {
        res.setHeader("Content-Type", "application/json");
        res.end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
      },
      () => {
        res.statusCode = 500;
        res.end();
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    realm: `http://127.0.0.1:${port}/token`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export async function writeJwks(path: string, keys: object[]): Promise<void> {
  await writeFile(path, JSON.stringify({ keys }));
}
