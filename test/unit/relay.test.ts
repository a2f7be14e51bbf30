import { describe, expect, it } from "vitest";
import { LinkRate } from "../../src/proxy/link-rate.js";
import { RelayBoard, type RelayDecision } from "../../src/proxy/relay.js";

const KEY = "lain/app@sha256:0a";
const MiB = 1024 * 1024;
const served = (d: RelayDecision) => d.kind === "serve";
const parentOf = (d: RelayDecision) => (d.kind === "relay" ? d.parent : undefined);
/** Sibling `name` (its address http://name) asks for `key`, telling its rate when given. */
const ask = (board: RelayBoard, name: string, rate?: number, key = KEY) => board.decide(key, { address: `http://${name}`, rate });

describe("RelayBoard: who serves a blob to which sibling", () => {
  it("fanout 1: serves the first asker, and sends each next one to the previous: a chain", () => {
    const board = new RelayBoard(1);
    expect(served(ask(board, "a"))).toBe(true);
    expect(parentOf(ask(board, "b"))).toBe("http://a");
    expect(parentOf(ask(board, "c"))).toBe("http://b");
    expect(parentOf(ask(board, "d"))).toBe("http://c");
  });

  it("fanout 2: a tree, every parent with at most two children, the earliest receivers first", () => {
    const board = new RelayBoard(2);
    const decisions = ["a", "b", "c", "d", "e", "f"].map((n) => ask(board, n));
    expect(decisions.slice(0, 2).every(served)).toBe(true);
    expect(decisions.slice(2).map(parentOf)).toEqual(["http://a", "http://a", "http://b", "http://b"]);
  });

  it("a stream that ends frees its slot: the next asker is served here again", () => {
    const board = new RelayBoard(1);
    const first = ask(board, "a");
    if (first.kind !== "serve") throw new Error("the first asker is served");
    first.release();
    first.release();
    expect(served(ask(board, "b"))).toBe(true);
    expect(parentOf(ask(board, "c"))).toBe("http://a");
  });

  it("never names the asker as its own parent, and serves when no receiver has room", () => {
    const board = new RelayBoard(1);
    ask(board, "a");
    // a asks again (its first transfer broke): nobody else receives, so it is served here.
    expect(served(ask(board, "a"))).toBe(true);
  });

  it("keeps each blob's relay apart", () => {
    const board = new RelayBoard(1);
    ask(board, "a");
    expect(served(ask(board, "b", undefined, "lain/app@sha256:0b"))).toBe(true);
  });
});

describe("RelayBoard: a slow mirror is never the parent of fast ones", () => {
  const FAST = 50 * MiB;
  const SLOW = 5 * MiB;

  it("passes over a slow receiver: the fast asker goes to the next fast one, or is served here", () => {
    const board = new RelayBoard(1, () => FAST);
    expect(served(ask(board, "slow", SLOW))).toBe(true);
    // Only the slow one receives, and this mirror serves it: the fast one is served here too, past the fanout.
    expect(served(ask(board, "a", FAST))).toBe(true);
    expect(parentOf(ask(board, "b", FAST))).toBe("http://a");
    expect(parentOf(ask(board, "c", FAST))).toBe("http://b");
  });

  it("a slow asker may be sent to a fast parent, and is then passed over as a parent itself", () => {
    const board = new RelayBoard(1, () => FAST);
    ask(board, "a", FAST);
    expect(parentOf(ask(board, "slow", SLOW))).toBe("http://a");
    const next = ask(board, "b", FAST);
    expect(served(next)).toBe(true);
    expect(parentOf(ask(board, "c", FAST))).toBe("http://b");
    // Another slow one may hang below the slow one: it is not faster.
    expect(parentOf(ask(board, "slow2", SLOW))).toBe("http://slow");
  });

  it("this mirror, much slower than the asker, declines; the next fast ones are sent to the one it declined", () => {
    const board = new RelayBoard(1, () => SLOW);
    expect(ask(board, "a", FAST).kind).toBe("decline");
    expect(parentOf(ask(board, "b", FAST))).toBe("http://a");
    expect(parentOf(ask(board, "c", FAST))).toBe("http://b");
    // A slow sibling is served by it, as by any other.
    expect(served(ask(board, "slow", SLOW))).toBe(true);
    expect(board.recent()[0]?.receivers.map((r) => [r.address, r.source])).toEqual([
      ["http://a", "upstream"],
      ["http://b", "http://a"],
      ["http://c", "http://b"],
      ["http://slow", "here"],
    ]);
  });

  it("a rate unknown on either side changes nothing: it arrives where it comes", () => {
    const board = new RelayBoard(1, () => SLOW);
    expect(served(ask(board, "a"))).toBe(true);
    expect(parentOf(ask(board, "b", FAST))).toBe("http://a");
  });

  it("a quarter of the asker's rate is still fast enough to be its parent", () => {
    const board = new RelayBoard(1, () => FAST / 4);
    expect(served(ask(board, "a", FAST))).toBe(true);
  });
});

describe("LinkRate: how fast this mirror receives", () => {
  it("is the best of the latest fills large enough to time, once three were, the small ones ignored", () => {
    const rate = new LinkRate();
    expect(rate.estimate()).toBeUndefined();
    expect(rate.record(1 * MiB, 1)).toBeUndefined();
    expect(rate.record(10 * MiB, 1000)).toBeUndefined();
    expect(rate.record(10 * MiB, 2000)).toBeUndefined();
    expect(rate.record(1 * MiB, 1)).toBeUndefined();
    expect(rate.record(4 * MiB, 1000)).toBe(10 * MiB);
    expect(rate.record(40 * MiB, 1000)).toBe(40 * MiB);
  });

  it("forgets a fast fill once eight later ones have come", () => {
    const rate = new LinkRate();
    rate.record(100 * MiB, 1000);
    for (let i = 0; i < 7; i++) rate.record(4 * MiB, 1000);
    expect(rate.estimate()).toBe(100 * MiB);
    rate.record(4 * MiB, 1000);
    expect(rate.estimate()).toBe(4 * MiB);
  });
});
