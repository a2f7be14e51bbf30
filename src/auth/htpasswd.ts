import bcrypt from "bcryptjs";
import { readFile, stat } from "node:fs/promises";
import { ConfigError } from "../refusal.js";
import type { Access } from "./access.js";
import type { AuthDecision, Authenticator } from "./authenticator.js";

/** auth.htpasswd: Basic authentication against an htpasswd file of bcrypt entries. */
export interface HtpasswdConfig {
  realm: string;
  path: string;
}

/** An entry nobody can log in with, by its line: the operator is told which and why. */
export interface RefusedEntry {
  line: number;
  user: string;
  why: string;
}

interface Users {
  /** user -> bcrypt hash: the only format distribution takes. */
  hashes: Map<string, string>;
  refused: RefusedEntry[];
  version: string;
}

/** What an htpasswd entry that is not bcrypt is, as the htpasswd tool's options name them. */
function formatOf(hash: string): string {
  if (hash.startsWith("$apr1$")) return "an MD5 entry ($apr1$, what plain `htpasswd` writes)";
  if (hash.startsWith("{SHA}")) return "a SHA-1 entry ({SHA}, htpasswd -s)";
  if (/^\$[56]\$/.test(hash)) return "a SHA-2 crypt entry ($5$ or $6$, htpasswd -2 or -5)";
  if (hash.startsWith("$1$")) return "an MD5-crypt entry ($1$)";
  if (hash === "") return "an entry without a password hash";
  return "a crypt or plain-text entry (htpasswd -d or -p)";
}

async function readUsers(path: string): Promise<Users> {
  const info = await stat(path);
  if (info.isDirectory()) throw Object.assign(new Error(`${path} is a directory`), { code: "EISDIR" });
  const hashes = new Map<string, string>();
  const refused: RefusedEntry[] = [];
  (await readFile(path, "utf8")).split(/\r?\n/).forEach((text, i) => {
    if (text.trim() === "" || text.startsWith("#")) return;
    const colon = text.indexOf(":");
    const user = colon > 0 ? text.slice(0, colon) : text.trim();
    const hash = colon > 0 ? text.slice(colon + 1).trim() : "";
    if (/^\$2[aby]\$/.test(hash)) hashes.set(user, hash);
    else refused.push({ line: i + 1, user, why: `${formatOf(hash)}; only bcrypt is supported, as in distribution (htpasswd -B)` });
  });
  return { hashes, refused, version: `${info.mtimeMs}:${info.size}:${info.ino}` };
}

/**
 * distribution's htpasswd access controller: any user of the file may do anything. The file is
 * read again when it changes, so users are added and removed without a restart; if it goes
 * away or cannot be read while the registry runs, the users of its last good version stay.
 */
export class HtpasswdAuthenticator implements Authenticator {
  readonly kind = "htpasswd";

  private constructor(
    readonly config: HtpasswdConfig,
    private users: Users,
  ) {}

  /**
   * Reads the file. Unlike distribution, which writes a missing file with a generated password
   * for a user "docker" (and prints it to its log), a missing file is a configuration error.
   */
  static async create(config: HtpasswdConfig): Promise<HtpasswdAuthenticator> {
    try {
      return new HtpasswdAuthenticator(config, await readUsers(config.path));
    } catch (err) {
      throw new ConfigError("auth.htpasswd.path", `${config.path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }

  /** How many users can log in (bcrypt entries). */
  get userCount(): number {
    return this.users.hashes.size;
  }

  /** The entries of the file as read that nobody can log in with. */
  get refusedEntries(): readonly RefusedEntry[] {
    return this.users.refused;
  }

  private async current(): Promise<Map<string, string>> {
    try {
      const info = await stat(this.config.path);
      if (`${info.mtimeMs}:${info.size}:${info.ino}` !== this.users.version) this.users = await readUsers(this.config.path);
    } catch {
      // Gone or unreadable for now (an editor replacing it, a bad mount): the last good users stay.
    }
    return this.users.hashes;
  }

  private refuse(required: Access[], message: string, reason: string, user?: string): AuthDecision {
    return { ok: false, challenge: `Basic realm="${this.config.realm}"`, code: "UNAUTHORIZED", message, detail: required, reason, ...(user !== undefined ? { user } : {}) };
  }

  async authorize(authorization: string | undefined, required: Access[], _origin: string): Promise<AuthDecision> {
    if (authorization === undefined) return this.refuse(required, "authentication required", "no credentials");
    const match = /^Basic\s+(\S+)$/i.exec(authorization);
    if (!match) return this.refuse(required, "authentication required", "the authorization header is not Basic");
    const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) return this.refuse(required, "invalid username or password", "malformed Basic credentials");
    const user = decoded.slice(0, colon);
    const hash = (await this.current()).get(user);
    // The client hears the same either way; the log tells the operator which.
    if (!hash) return this.refuse(required, "invalid username or password", "unknown user", user);
    if (!(await bcrypt.compare(decoded.slice(colon + 1), hash))) return this.refuse(required, "invalid username or password", "wrong password", user);
    return { ok: true, user };
  }
}
