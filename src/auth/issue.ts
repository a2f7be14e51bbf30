import { createPublicKey, type KeyObject } from "node:crypto";
import { SignJWT } from "jose";
import { parseScope, type Access } from "./access.js";
import { libtrustKeyId } from "./libtrust.js";

export interface IssueOptions {
  key: KeyObject;
  issuer: string;
  service: string;
  subject: string;
  scopes: string[];
  ttlSeconds: number;
}

/** The JWS algorithm for a private key, as distribution's libtrust picks it. */
function algorithmFor(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  if (type === "rsa") return "RS256";
  if (type === "ed25519") return "EdDSA";
  if (type === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1") return "ES256";
    if (curve === "secp384r1") return "ES384";
    if (curve === "secp521r1") return "ES512";
  }
  throw new Error(`keys of type ${type ?? "unknown"} cannot sign registry tokens`);
}

/**
 * A Docker registry token as the LAIN console signs them (kid = libtrust key id, no x5c):
 * for scripts and CI of installs without an auth server.
 */
export async function issueToken(options: IssueOptions): Promise<string> {
  const access: Access[] = options.scopes.map((scope) => {
    const parsed = parseScope(scope);
    if (!parsed) throw new Error(`invalid scope ${JSON.stringify(scope)}: expected type:name:actions`);
    return parsed;
  });
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ access })
    .setProtectedHeader({ alg: algorithmFor(options.key), typ: "JWT", kid: libtrustKeyId(createPublicKey(options.key)) })
    .setIssuer(options.issuer)
    .setAudience(options.service)
    .setSubject(options.subject)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + options.ttlSeconds)
    .sign(options.key);
}
