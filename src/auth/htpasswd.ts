import bcrypt from "bcryptjs";
import { readFile, stat } from "node:fs/promises";
import type { Access } from "./access.js";
import type { AuthDecision, Authenticator } from "./authenticator.js";

/** auth.htpasswd: Basic authentication against an htpasswd file of bcrypt entries. */
export interface HtpasswdConfig {
  realm: string;
  path: string;
}

/**
 * distribution's htpasswd access controller: any user of the file may do anything. The file is
 * read again when it changes, so users are added and removed without a restart.
 */
export class HtpasswdAuthenticator implements Authenticator {
  private users = new Map<string, string>();
  private loadedVersion = "";

  constructor(readonly config: HtpasswdConfig) {}

  private async current(): Promise<Map<string, string>> {
    const info = await stat(this.config.path);
    const version = `${info.mtimeMs}:${info.size}:${info.ino}`;
    if (version !== this.loadedVersion) {
      const users = new Map<string, string>();
      for (const line of (await readFile(this.config.path, "utf8")).split(/\r?\n/)) {
        const colon = line.indexOf(":");
        if (colon > 0 && !line.startsWith("#")) users.set(line.slice(0, colon), line.slice(colon + 1).trim());
      }
      this.users = users;
      this.loadedVersion = version;
    }
    return this.users;
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
    // bcrypt only: distribution refuses the file's other formats too.
    if (!hash || !/^\$2[aby]\$/.test(hash) || !(await bcrypt.compare(decoded.slice(colon + 1), hash))) {
      return this.refuse(required, "invalid username or password");
    }
    return { ok: true, user };
  }
}
