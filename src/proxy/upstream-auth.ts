import { LRUCache } from "lru-cache";

/** A WWW-Authenticate challenge (RFC 7235), as registries send them. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** `Bearer realm="https://auth",service="registry",scope="repository:a:pull"` */
export function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*([A-Za-z][A-Za-z0-9-]*)\s*(.*)$/.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  const pair = /([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  const rest = match[2] ?? "";
  for (let m = pair.exec(rest); m; m = pair.exec(rest)) {
    params[(m[1] ?? "").toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : (m[3] ?? "");
  }
  return { scheme: (match[1] ?? "").toLowerCase(), params };
}

export interface Credentials {
  username: string;
  password: string;
}

/** Fetches a token from a realm: the Docker token protocol's GET, answering token and lifetime. */
export type TokenFetcher = (url: URL, basic: string | undefined) => Promise<{ token: string; expiresInSeconds: number }>;

/** Tokens are used this long before they expire, so a request never carries one that lapses in flight. */
const EXPIRY_MARGIN_MS = 10_000;

/**
 * Authorization towards the peer: anonymous until it challenges, then basic or the bearer token
 * dance with its realm (docs: "Docker Registry v2 authentication via central service"). Tokens
 * are cached per scope until shortly before they expire.
 */
export class UpstreamAuth {
  private challenge: Challenge | undefined;
  private readonly tokens = new LRUCache<string, { token: string; expiresAt: number }>({ max: 1000 });
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly credentials: Credentials | undefined,
    private readonly fetchToken: TokenFetcher,
  ) {}

  private get basic(): string | undefined {
    if (!this.credentials) return undefined;
    return `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString("base64")}`;
  }

  /** The Authorization header for a request needing `scope`, from what the peer asked for before. */
  async header(scope: string): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") return this.basic;
    if (challenge.scheme !== "bearer") return undefined;
    const cached = this.tokens.get(scope);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    return `Bearer ${await this.token(challenge, scope)}`;
  }

  /**
   * Learns from a 401's challenge; answers whether retrying with credentials can help (it cannot
   * when the request already carried what this challenge asks for).
   */
  learn(wwwAuthenticate: string | undefined, scope: string, sent: string | undefined): boolean {
    const challenge = wwwAuthenticate ? parseChallenge(wwwAuthenticate) : undefined;
    if (!challenge || (challenge.scheme !== "basic" && challenge.scheme !== "bearer")) return false;
    this.challenge = challenge;
    if (challenge.scheme === "basic") return this.credentials !== undefined && sent === undefined;
    // A refused token is forgotten, so the next request fetches a fresh one.
    if (sent !== undefined) this.tokens.delete(scope);
    return sent === undefined;
  }

  private token(challenge: Challenge, scope: string): Promise<string> {
    const key = `${challenge.params.realm}\0${scope}`;
    const running = this.pending.get(key);
    if (running) return running;
    const realm = new URL(challenge.params.realm ?? "");
    if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
    if (scope) realm.searchParams.set("scope", scope);
    const fetching = this.fetchToken(realm, this.basic)
      .then(({ token, expiresInSeconds }) => {
        this.tokens.set(scope, { token, expiresAt: Date.now() + expiresInSeconds * 1000 - EXPIRY_MARGIN_MS });
        return token;
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, fetching);
    return fetching;
  }
}
