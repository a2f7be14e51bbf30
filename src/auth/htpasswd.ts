import bcrypt from "bcryptjs";
import { readFile, stat } from "node:fs/promises";
import { ConfigError } from "../config/config-error.js";
import type { Access } from "./access.js";
import type { AuthDecision, Authenticator } from "./authenticator.js";

/** auth.htpasswd: Basic authentication against an htpasswd file of bcrypt entries. */
export interface HtpasswdConfig {
  realm: string;
  path: string;
}

interface Users {
  /** user -> bcrypt hash; entries of other formats are left out (distribution refuses them too). */
  hashes: Map<string, string>;
  version: string;
}

async function readUsers(path: string): Promise<Users> {
  const info = await stat(path);
  if (info.isDirectory()) throw Object.assign(new Error(`${path} is a directory`), { code: "EISDIR" });
  const hashes = new Map<string, string>();
  for (const line of (await readFile(path, "utf8")).split(/\r?\n/)) {
    const colon = line.indexOf(":");
    const hash = line.slice(colon + 1).trim();
    if (colon > 0 && !line.startsWith("#") && /^\$2[aby]\$/.test(hash)) hashes.set(line.slice(0, colon), hash);
  }
  return { hashes, version: `${info.mtimeMs}:${info.size}:${info.ino}` };
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

  private async current(): Promise<Map<string, string>> {
    try {
      const info = await stat(this.config.path);
      if (`${info.mtimeMs}:${info.size}:${info.ino}` !== this.users.version) this.users = await readUsers(this.config.path);
    } catch {
      // Gone or unreadable for now (an editor replacing it, a bad mount): the last good users stay.
    }
    return this.users.hashes;
  }

  private refuse(required: Access[], message: string): AuthDecision {
    return { ok: false, challenge: `Basic realm="${this.config.realm}"`, code: "UNAUTHORIZED", message, detail: required };
  }

  async authorize(authorization: string | undefined, required: Access[], _origin: string): Promise<AuthDecision> {
    const match = /^Basic\s+(\S+)$/i.exec(authorization ?? "");
    if (!match) return this.refuse(required, "authentication required");
    const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const user = decoded.slice(0, colon);
    const hash = colon > 0 ? (await this.current()).get(user) : undefined;
    if (!hash || !(await bcrypt.compare(decoded.slice(colon + 1), hash))) {
      return this.refuse(required, "invalid username or password");
    }
    return { ok: true, user };
  }
}
