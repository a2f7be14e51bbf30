import { LRUCache } from "lru-cache";

/** A rollout's relay of one blob is forgotten this long after its last request. */
const RELAY_MEMORY_MS = 120_000;
/**
 * A mirror whose link is more than this many times slower than an asker's is never its parent.
 * Far apart: a rate is an estimate, and a mirror that declines costs the primary a copy.
 */
const SLOWER_LINK = 4;

/** A sibling asking for a blob: its address, and its receive rate (bytes/s) when it has learnt one (proxy/link-rate.ts). */
export interface Asker {
  address: string;
  rate?: number;
}

interface Receiver extends Asker {
  /** Siblings sent to it for their bytes. */
  children: number;
  /** Where it was sent for the blob: a sibling's address, "here" (this mirror) or "upstream" (declined). */
  source: string;
}

interface BlobRelay {
  /** Siblings' streams of the blob this instance is serving now. */
  serving: number;
  /** Siblings receiving the blob through this instance, directly or from a relay it named, in arrival order. */
  receivers: Receiver[];
}

/**
 * What a sibling's request for a blob gets: a stream from here (released when it ends), the
 * sibling to ask instead, or, from a mirror much slower than the asker, "ask upstream yourself".
 */
export type RelayDecision = { kind: "serve"; release: () => void } | { kind: "relay"; parent: string } | { kind: "decline" };

/** One blob's relay as the console shows it. */
export interface RelayView {
  blob: string;
  serving: number;
  receivers: Array<{ address: string; source: string; rate?: number }>;
}

function slower(rate: number | undefined, than: number | undefined): boolean {
  return rate !== undefined && than !== undefined && rate * SLOWER_LINK < than;
}

/**
 * How a blob spreads through the fleet without making one mirror the hot spot: the mirror that
 * siblings ask for a blob serves at most `fanout` of their streams at once, and sends the next
 * ones to siblings already receiving it, which serve it from their own fill as it arrives. The
 * parents are assigned as requests arrive, earliest receivers first, each at most `fanout`
 * children: with fanout 1 a chain, where every NIC sends one copy. A mirror much slower than the
 * asker is never its parent: such a receiver is passed over, and this mirror, if it is the slow
 * one, sends the asker upstream and then sends the next fast ones to it (docs/design/fleet-relay.md).
 */
export class RelayBoard {
  private readonly blobs = new LRUCache<string, BlobRelay>({ max: 10_000, ttl: RELAY_MEMORY_MS });

  constructor(
    private readonly fanout: number,
    /** This mirror's own receive rate now (bytes/s), when it has learnt one. */
    private readonly ownRate: () => number | undefined = () => undefined,
  ) {}

  /** A sibling asks for the blob `key`. */
  decide(key: string, asker: Asker): RelayDecision {
    const relay = this.blobs.get(key) ?? { serving: 0, receivers: [] };
    this.blobs.set(key, relay);
    const full = relay.serving >= this.fanout;
    const tooSlow = slower(this.ownRate(), asker.rate);
    const parent = full || tooSlow ? relay.receivers.find((r) => r.children < this.fanout && r.address !== asker.address && !slower(r.rate, asker.rate)) : undefined;
    let receiver = relay.receivers.find((r) => r.address === asker.address);
    if (!receiver) relay.receivers.push((receiver = { address: asker.address, children: 0, source: "here" }));
    receiver.rate = asker.rate;
    receiver.source = parent?.address ?? (tooSlow ? "upstream" : "here");
    if (parent) {
      parent.children++;
      return { kind: "relay", parent: parent.address };
    }
    if (tooSlow) return { kind: "decline" };
    relay.serving++;
    let released = false;
    return {
      kind: "serve",
      release: () => {
        if (!released) relay.serving--;
        released = true;
      },
    };
  }

  /** The relays of the last minutes, the latest first. */
  recent(): RelayView[] {
    return [...this.blobs.entries()].map(([blob, relay]) => ({
      blob,
      serving: relay.serving,
      receivers: relay.receivers.map(({ address, source, rate }) => ({ address, source, rate })),
    }));
  }
}
