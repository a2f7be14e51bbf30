import type { Access } from "../auth/access.js";
import type { ProxyConfig } from "../config/config.js";
import { RegistryError } from "../registry/errors.js";

/** Actions by which a request changes a repository (a token's "*" grants them all). */
const WRITE_ACTIONS = new Set(["push", "delete", "*"]);

/**
 * The repositories a mirror pulls through (proxy.namespaces; all when none are listed), and what
 * it answers a write there. Their truth is the primary's: a mirror takes a write there only as a
 * standby (proxy.pushes: writeback, which validation allows only with an auth section), and only
 * while the primary does not answer; the write is then journaled for the primary
 * (proxy/writeback.ts). While the primary answers, writes go to it.
 */
export class MirroredNamespaces {
  constructor(
    private readonly config: ProxyConfig,
    /** Whether the peer answers its API check now (an answer a second old at most). */
    private readonly upstreamAnswers: () => Promise<boolean>,
  ) {}

  includes(name: string): boolean {
    const { namespaces } = this.config;
    return namespaces.length === 0 || namespaces.some((ns) => name === ns || name.startsWith(`${ns}/`));
  }

  /** Why a request that needs `required` may not go on here; undefined when it may. */
  async writeRefusal(required: readonly Access[]): Promise<RegistryError | undefined> {
    const target = required.find((a) => a.type === "repository" && a.actions.some((action) => WRITE_ACTIONS.has(action)) && this.includes(a.name));
    if (!target) return undefined;
    const primary = this.config.remoteUrls[0];
    const detail = { name: target.name, primary };
    if (await this.upstreamAnswers()) {
      return new RegistryError("DENIED", `${target.name} is mirrored from ${primary}, and this mirror takes no pushes or deletes there while it answers (proxy.pushes): push to ${primary}`, detail);
    }
    if (this.config.pushes === "writeback") return undefined;
    return new RegistryError("UNAVAILABLE", `${target.name} is mirrored from ${primary}, which does not answer now, and this mirror takes no pushes or deletes there (proxy.pushes: refuse): retry once it is back`, detail);
  }
}
