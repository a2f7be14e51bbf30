import { createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { calculateJwkThumbprint, decodeProtectedHeader, jwtVerify, type JWK } from "jose";
import { isGranted, scopeParameter, type Access } from "./access.js";
import { SIGNING_ALGORITHMS } from "./algorithms.js";
import type { AuthDecision, Authenticator } from "./authenticator.js";
import { libtrustKeyId } from "./libtrust.js";
import { ConfigError } from "../refusal.js";

/** auth.token, as distribution reads it. */
export interface TokenConfig {
  realm: string;
  service: string;
  issuer: string;
  /** PEM bundle of the certificates whose keys may sign tokens. */
  rootCertBundle?: string;
  /** A JWK set file, as an alternative to the bundle. */
  jwks?: string;
  /**
   * distribution's autoredirect: the realm is the registry's own host plus this path (the
   * auth server sits behind the same name), whatever `realm` says.
   */
  autoRedirectPath?: string;
  /** auth.token.signingalgorithms: the algorithms accepted (default: every asymmetric one). */
  signingAlgorithms?: string[];
}

/** distribution allows this much clock skew on exp and nbf. */
const LEEWAY_SECONDS = 60;

interface Claims {
  access?: unknown;
  sub?: string;
}

class TokenError extends Error {}

function isAccessList(value: unknown): value is Access[] {
  return (
    Array.isArray(value) &&
    value.every(
      (a) =>
        typeof a === "object" && a !== null && typeof (a as Access).type === "string" && typeof (a as Access).name === "string" &&
        Array.isArray((a as Access).actions) && (a as Access).actions.every((x) => typeof x === "string"),
    )
  );
}

const BUNDLE_KEY = "auth.token.rootcertbundle";
const JWKS_KEY = "auth.token.jwks";

async function readConfigured(path: string, key: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(key, `${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** What a file names, or a ConfigError at its key when it does not parse. */
function parsed<T>(key: string, path: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new ConfigError(key, `${path} does not parse: ${(err as Error).message}`);
  }
}

function pemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new X509Certificate(block));
}

/**
 * Docker token authentication (distribution's token access controller): tokens from the realm,
 * signed by a key the registry trusts, naming this service and granting the needed scopes.
 */
export class TokenAuthenticator implements Authenticator {
  readonly kind = "token";

  private constructor(
    readonly config: TokenConfig,
    private readonly roots: X509Certificate[],
    /** Trusted keys by libtrust key id, RFC 7638 thumbprint and JWK set kid. */
    private readonly keys: Map<string, KeyObject>,
  ) {}

  static async create(config: TokenConfig): Promise<TokenAuthenticator> {
    const unknown = (config.signingAlgorithms ?? []).filter((a) => !SIGNING_ALGORITHMS.includes(a));
    if (unknown.length > 0) {
      throw new ConfigError("auth.token.signingalgorithms", `${unknown.join(", ")}: not one of ${SIGNING_ALGORITHMS.join(", ")} (asymmetric algorithms only)`);
    }
    const keys = new Map<string, KeyObject>();
    const trust = async (key: KeyObject, kid?: string) => {
      keys.set(libtrustKeyId(key), key);
      keys.set(await calculateJwkThumbprint(key.export({ format: "jwk" }) as JWK), key);
      if (kid) keys.set(kid, key);
    };
    let roots: X509Certificate[] = [];
    if (config.rootCertBundle) {
      const path = config.rootCertBundle;
      const pem = await readConfigured(path, BUNDLE_KEY);
      roots = parsed(BUNDLE_KEY, path, () => pemCertificates(pem));
      if (roots.length === 0) throw new ConfigError(BUNDLE_KEY, `${path} holds no certificate`);
    }
    for (const root of roots) await trust(root.publicKey);
    if (config.jwks) {
      const path = config.jwks;
      const text = await readConfigured(path, JWKS_KEY);
      const set = parsed(JWKS_KEY, path, () => (JSON.parse(text) as { keys?: JWK[] }).keys ?? []);
      for (const jwk of set) await trust(parsed(JWKS_KEY, path, () => createPublicKey({ key: jwk as JsonWebKey, format: "jwk" })), jwk.kid);
    }
    if (keys.size === 0) throw new ConfigError("auth.token", "needs rootcertbundle or jwks: no key could sign a token");
    return new TokenAuthenticator(config, roots, keys);
  }

  private get algorithms(): string[] {
    return this.config.signingAlgorithms ?? SIGNING_ALGORITHMS;
  }

  private challenge(required: Access[], origin: string, error?: string): string {
    const realm = this.config.autoRedirectPath === undefined ? this.config.realm : `${origin}${this.config.autoRedirectPath}`;
    const parts = [`realm="${realm}"`, `service="${this.config.service}"`];
    if (required.length > 0) parts.push(`scope="${scopeParameter(required)}"`);
    if (error) parts.push(`error="${error}"`);
    return `Bearer ${parts.join(",")}`;
  }

  /** The x5c chain must end in a certificate of the bundle (or be one). */
  private keyFromChain(x5c: string[]): KeyObject {
    const chain = x5c.map((der) => new X509Certificate(Buffer.from(der, "base64")));
    const now = Date.now();
    for (const cert of chain) {
      if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) throw new TokenError("a certificate of the x5c chain is not valid now");
    }
    for (let i = 0; i < chain.length - 1; i++) {
      if (!chain[i]!.verify(chain[i + 1]!.publicKey)) throw new TokenError("the x5c chain is broken");
    }
    const top = chain[chain.length - 1]!;
    const anchored = this.roots.some((root) => root.fingerprint256 === top.fingerprint256 || (top.checkIssued(root) && top.verify(root.publicKey)));
    if (!anchored) throw new TokenError("the x5c chain does not lead to a trusted certificate");
    return chain[0]!.publicKey;
  }

  private async signingKey(token: string): Promise<KeyObject> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new TokenError("malformed token");
    }
    if (!header.alg || !this.algorithms.includes(header.alg)) throw new TokenError(`signing algorithm ${header.alg ?? "none"} is not allowed`);
    if (Array.isArray(header.x5c) && header.x5c.length > 0) return this.keyFromChain(header.x5c);
    if (header.jwk) {
      // An embedded key counts only when it is one of ours.
      const embedded = createPublicKey({ key: header.jwk as JsonWebKey, format: "jwk" });
      const trusted = this.keys.get(libtrustKeyId(embedded));
      if (!trusted) throw new TokenError("the token's embedded key is not trusted");
      return trusted;
    }
    const trusted = header.kid ? this.keys.get(header.kid) : undefined;
    if (!trusted) throw new TokenError(`no trusted key with id ${header.kid ?? "(none)"}`);
    return trusted;
  }

  private async verify(token: string): Promise<{ subject: string | undefined; grants: Access[] }> {
    const key = await this.signingKey(token);
    try {
      const { payload } = await jwtVerify<Claims>(token, key, {
        algorithms: this.algorithms,
        issuer: this.config.issuer,
        audience: this.config.service,
        clockTolerance: LEEWAY_SECONDS,
      });
      const grants = payload.access ?? [];
      if (!isAccessList(grants)) throw new TokenError("the token's access claim is malformed");
      return { subject: payload.sub, grants };
    } catch (err) {
      if (err instanceof TokenError) throw err;
      throw new TokenError(`token rejected: ${(err as Error).message}`);
    }
  }

  async authorize(authorization: string | undefined, required: Access[], origin: string): Promise<AuthDecision> {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
    if (!match) {
      const reason = authorization === undefined ? "no credentials" : "the authorization header is not a Bearer token";
      return { ok: false, challenge: this.challenge(required, origin), code: "UNAUTHORIZED", message: "authentication required", detail: required, reason };
    }
    let verified: { subject: string | undefined; grants: Access[] };
    try {
      verified = await this.verify(match[1]!);
    } catch (err) {
      const message = (err as Error).message;
      return { ok: false, challenge: this.challenge(required, origin, "invalid_token"), code: "UNAUTHORIZED", message, detail: required, reason: message };
    }
    const missing = required.filter((need) => !isGranted(verified.grants, need));
    if (missing.length > 0) {
      return {
        ok: false,
        challenge: this.challenge(required, origin, "insufficient_scope"),
        code: "UNAUTHORIZED",
        message: "the token does not grant the access this request needs",
        detail: missing,
        reason: "insufficient scope",
        ...(verified.subject !== undefined ? { user: verified.subject } : {}),
      };
    }
    return { ok: true, user: verified.subject };
  }
}
