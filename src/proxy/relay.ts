import { LRUCache } from "lru-cache";

/** A rollout's relay of one blob is forgotten this long after its last request. */
const RELAY_MEMORY_MS = 120_000;

interface Receiver {
  address: string;
  /** Siblings sent to it for their bytes. */
  children: number;
}

interface BlobRelay {
  /** Siblings' streams of the blob this instance is serving now. */
  serving: number;
  /** Siblings receiving the blob through this instance, directly or from a relay it named, in arrival order. */
  receivers: Receiver[];
}

/** What a sibling's request for a blob gets: a stream from here (released when it ends), or the sibling to ask instead. */
export type RelayDecision = { kind: "serve"; release: () => void } | { kind: "relay"; parent: string };

/**
 * How a blob spreads through the fleet without making one mirror the hot spot: the mirror that
 * siblings ask for a blob serves at most `fanout` of their streams at once, and sends the next
 * ones to siblings already receiving it, which serve it from their own fill as it arrives. The
 * parents are assigned as requests arrive, earliest receivers first, each at most `fanout`
 * children: with fanout 1 a chain, where every NIC sends one copy (docs/design/fleet-relay.md).
 */
export class RelayBoard {
  private readonly blobs = new LRUCache<string, BlobRelay>({ max: 10_000, ttl: RELAY_MEMORY_MS });

  constructor(private readonly fanout: number) {}

  /** A sibling at `from` asks for the blob `key`. */
  decide(key: string, from: string): RelayDecision {
    const relay = this.blobs.get(key) ?? { serving: 0, receivers: [] };
    this.blobs.set(key, relay);
    const parent = relay.serving >= this.fanout ? relay.receivers.find((r) => r.children < this.fanout && r.address !== from) : undefined;
    if (!relay.receivers.some((r) => r.address === from)) relay.receivers.push({ address: from, children: 0 });
    if (parent) {
      parent.children++;
      return { kind: "relay", parent: parent.address };
    }
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
}
