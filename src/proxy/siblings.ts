import { createHash } from "node:crypto";
import type { ProxyConfig } from "../config/config.js";
import { SIBLING_FROM_HEADER, SIBLING_HEADER, SIBLING_RATE_HEADER, signSiblingRequest } from "../auth/sibling-signature.js";
import { LinkRate } from "./link-rate.js";
import { UpstreamRegistry } from "./upstream.js";

const SIBLING_IDLE_MS = 5_000;

/** A live mirror of the fleet other than this one, and the client that asks it. */
export interface Sibling {
  address: string;
  client: UpstreamRegistry;
}

/** Rendezvous (highest random weight) score of a member for a key. */
function score(key: string, member: string): bigint {
  return createHash("sha256").update(`${key}\n${member}`).digest().readBigUInt64BE(0);
}

/**
 * The member that owns a key: every instance with the same members picks the same one without
 * talking to the others, and a member joining or leaving moves only the keys it wins or won.
 */
export function rendezvousOwner(key: string, members: readonly string[]): string | undefined {
  let best: { member: string; score: bigint } | undefined;
  for (const member of members) {
    const s = score(key, member);
    if (!best || s > best.score || (s === best.score && member < best.member)) best = { member, score: s };
  }
  return best?.member;
}

/**
 * The other live mirrors (proxy.siblings): for each blob the one that owns it among all of them,
 * this one included. A sibling is asked with a request signed with http.secret and marked as a
 * sibling's, which the owner answers from its store or its own fill, never by asking on.
 */
export class Siblings {
  /** How fast this mirror receives, told to the siblings it asks. */
  readonly linkRate = new LinkRate();
  private members: string[] = [];
  private readonly clients = new Map<string, UpstreamRegistry>();

  constructor(
    /** This instance's cluster.advertise. */
    readonly self: string,
    private readonly config: ProxyConfig,
    private readonly secret: string,
    private readonly failed: () => void,
  ) {}

  /** The live mirrors now (this one among them when it is registered). */
  update(addresses: readonly string[]): void {
    this.members = [...new Set(addresses)].sort();
    for (const [address, client] of this.clients) {
      if (this.members.includes(address)) continue;
      this.clients.delete(address);
      void client.close();
    }
  }

  /** Every live mirror's address, sorted (for the console and metrics). */
  addresses(): readonly string[] {
    return this.members;
  }

  /** The sibling that owns a digest; undefined when this instance does (or knows no other). */
  owner(digest: string): Sibling | undefined {
    const address = rendezvousOwner(digest, this.members);
    if (address === undefined || address === this.self) return undefined;
    let client = this.clients.get(address);
    if (!client) {
      client = this.client(address);
      this.clients.set(address, client);
    }
    return { address, client };
  }

  /**
   * How this instance, owning a blob a sibling asks for, shows it is alive while it waits for the
   * primary: the fleet shares one configuration, so four beats within the asker's
   * firstbytetimeout, for as long as this instance waits for an answer itself.
   */
  heartbeat(): { everyMs: number; forMs: number } {
    return { everyMs: this.config.siblings.firstByteTimeoutMs / 4, forMs: this.config.timeouts.responseMs };
  }

  close(): Promise<unknown> {
    const closing = [...this.clients.values()].map((c) => c.close());
    this.clients.clear();
    return Promise.allSettled(closing);
  }

  /**
   * A sibling shows it is alive quickly or is passed over: its first byte, or its next
   * `102 Processing` while it waits for the primary (see heartbeat), within
   * proxy.siblings.firstbytetimeout; the peer client restarts its headers timeout on each.
   */
  private client(address: string): UpstreamRegistry {
    const { config, secret } = this;
    const sibling: ProxyConfig = {
      ...config,
      remoteUrls: [address],
      username: undefined,
      password: undefined,
      // A sibling on the same network that pauses for seconds is gone: the peer takes over.
      timeouts: { ...config.timeouts, responseMs: config.siblings.firstByteTimeoutMs, idleMs: Math.min(config.timeouts.idleMs, SIBLING_IDLE_MS) },
    };
    return new UpstreamRegistry(sibling, this.failed, (method, path) => {
      const rate = this.linkRate.estimate();
      return {
        [SIBLING_HEADER]: signSiblingRequest(secret, method, path),
        [SIBLING_FROM_HEADER]: this.self,
        ...(rate !== undefined && { [SIBLING_RATE_HEADER]: String(rate) }),
      };
    });
  }
}
