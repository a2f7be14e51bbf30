import type { Access } from "../auth/access.js";
import type { ProxyConfig } from "../config/config.js";
import { RegistryError } from "../registry/errors.js";

/** Actions by which a request changes a repository (a token's "*" grants them all). */
const WRITE_ACTIONS = new Set(["push", "delete", "*"]);

/**
 * The repositories a mirror pulls through (proxy.namespaces; all when none are listed), and what
 * it answers a write there. Their truth is the primary's: a node mirror that took a push there
 * would serve it in the primary's name, so it refuses unless it is a standby told to take them
 * (proxy.pushes: local, which validation allows only with an auth section).
 */
export class MirroredNamespaces {
  constructor(private readonly config: ProxyConfig) {}

  includes(name: string): boolean {
    const { namespaces } = this.config;
    return namespaces.length === 0 || namespaces.some((ns) => name === ns || name.startsWith(`${ns}/`));
  }

  /** Why a request that needs `required` may not go on here; undefined when it may. */
  writeRefusal(required: readonly Access[]): RegistryError | undefined {
    if (this.config.pushes === "local") return undefined;
    const target = required.find((a) => a.type === "repository" && a.actions.some((action) => WRITE_ACTIONS.has(action)) && this.includes(a.name));
    if (!target) return undefined;
    const primary = this.config.remoteUrls[0];
    return new RegistryError(
      "DENIED",
      `${target.name} is mirrored from ${primary}, and this mirror takes no pushes or deletes there (proxy.pushes): push to ${primary}`,
      { name: target.name, primary },
    );
  }
}
