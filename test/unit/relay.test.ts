import { describe, expect, it } from "vitest";
import { RelayBoard, type RelayDecision } from "../../src/proxy/relay.js";

const KEY = "lain/app@sha256:0a";
const served = (d: RelayDecision) => d.kind === "serve";
const parentOf = (d: RelayDecision) => (d.kind === "relay" ? d.parent : undefined);

describe("RelayBoard: who serves a blob to which sibling", () => {
  it("fanout 1: serves the first asker, and sends each next one to the previous: a chain", () => {
    const board = new RelayBoard(1);
    expect(served(board.decide(KEY, "http://a"))).toBe(true);
    expect(parentOf(board.decide(KEY, "http://b"))).toBe("http://a");
    expect(parentOf(board.decide(KEY, "http://c"))).toBe("http://b");
    expect(parentOf(board.decide(KEY, "http://d"))).toBe("http://c");
  });

  it("fanout 2: a tree, every parent with at most two children, the earliest receivers first", () => {
    const board = new RelayBoard(2);
    const decisions = ["a", "b", "c", "d", "e", "f"].map((n) => board.decide(KEY, `http://${n}`));
    expect(decisions.slice(0, 2).every(served)).toBe(true);
    expect(decisions.slice(2).map(parentOf)).toEqual(["http://a", "http://a", "http://b", "http://b"]);
  });

  it("a stream that ends frees its slot: the next asker is served here again", () => {
    const board = new RelayBoard(1);
    const first = board.decide(KEY, "http://a");
    if (first.kind !== "serve") throw new Error("the first asker is served");
    first.release();
    first.release();
    expect(served(board.decide(KEY, "http://b"))).toBe(true);
    expect(parentOf(board.decide(KEY, "http://c"))).toBe("http://a");
  });

  it("never names the asker as its own parent, and serves when no receiver has room", () => {
    const board = new RelayBoard(1);
    board.decide(KEY, "http://a");
    // a asks again (its first transfer broke): nobody else receives, so it is served here.
    expect(served(board.decide(KEY, "http://a"))).toBe(true);
  });

  it("keeps each blob's relay apart", () => {
    const board = new RelayBoard(1);
    board.decide(KEY, "http://a");
    expect(served(board.decide("lain/app@sha256:0b", "http://b"))).toBe(true);
  });
});
