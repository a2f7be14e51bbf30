import { describe, expect, it } from "vitest";
import { parseContentRange, parseRangeHeader } from "../../src/http/range.js";

describe("Range header of a blob GET", () => {
  it("serves the whole blob without a header or with one it cannot use", () => {
    expect(parseRangeHeader(undefined, 100)).toEqual({ kind: "whole" });
    expect(parseRangeHeader("bytes=0-1,5-6", 100)).toEqual({ kind: "whole" });
    expect(parseRangeHeader("items=0-1", 100)).toEqual({ kind: "whole" });
  });

  it("parses bounded, open and suffix ranges, clamping the end", () => {
    expect(parseRangeHeader("bytes=10-19", 100)).toEqual({ kind: "partial", range: { start: 10, end: 19 } });
    expect(parseRangeHeader("bytes=90-", 100)).toEqual({ kind: "partial", range: { start: 90, end: 99 } });
    expect(parseRangeHeader("bytes=-10", 100)).toEqual({ kind: "partial", range: { start: 90, end: 99 } });
    expect(parseRangeHeader("bytes=50-1000", 100)).toEqual({ kind: "partial", range: { start: 50, end: 99 } });
  });

  it("reports ranges beyond the end as unsatisfiable", () => {
    expect(parseRangeHeader("bytes=100-", 100)).toEqual({ kind: "unsatisfiable" });
    expect(parseRangeHeader("bytes=-0", 100)).toEqual({ kind: "unsatisfiable" });
  });
});

describe("Content-Range of an upload chunk", () => {
  it("accepts the distribution-spec form and the RFC form", () => {
    expect(parseContentRange("0-99")).toEqual({ start: 0, end: 99 });
    expect(parseContentRange("bytes 100-199/*")).toEqual({ start: 100, end: 199 });
  });

  it("refuses malformed and backwards ranges", () => {
    expect(parseContentRange("abc")).toBeUndefined();
    expect(parseContentRange("10-5")).toBeUndefined();
    expect(parseContentRange("-5")).toBeUndefined();
  });
});
