import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { SIGNATURE_VALIDITY_MS, signSiblingRequest, siblingSignatureProblem } from "../../src/auth/sibling-signature.js";
import { rendezvousOwner } from "../../src/proxy/siblings.js";

const digests = Array.from({ length: 2000 }, (_, i) => `sha256:${createHash("sha256").update(String(i)).digest("hex")}`);
const mirrors = ["http://10.0.0.1:5000", "http://10.0.0.2:5000", "http://10.0.0.3:5000", "http://10.0.0.4:5000"];

function owners(members: string[]): Map<string, string | undefined> {
  return new Map(digests.map((d) => [d, rendezvousOwner(d, members)]));
}

describe("rendezvous owner of a digest", () => {
  it("is the same whatever order the members are listed in, and spreads the digests", () => {
    const forward = owners(mirrors);
    expect(owners([...mirrors].reverse())).toEqual(forward);
    const shares = mirrors.map((m) => [...forward.values()].filter((o) => o === m).length);
    // 500 each on average; a share far off would make one mirror the fleet's bottleneck.
    for (const share of shares) expect(share).toBeGreaterThan(400);
    expect(rendezvousOwner(digests[0] as string, [])).toBeUndefined();
  });

  it("moves only the leaving member's digests when one leaves, and only the joiner's when one joins", () => {
    const before = owners(mirrors);
    const gone = mirrors[1] as string;
    const after = owners(mirrors.filter((m) => m !== gone));
    for (const digest of digests) {
      if (before.get(digest) !== gone) expect(after.get(digest)).toBe(before.get(digest));
      else expect(after.get(digest)).not.toBe(gone);
    }
    const joiner = "http://10.0.0.9:5000";
    const joined = owners([...mirrors, joiner]);
    const moved = digests.filter((d) => joined.get(d) !== before.get(d));
    expect(moved.every((d) => joined.get(d) === joiner)).toBe(true);
    expect(moved.length).toBeGreaterThan(digests.length / 5 - 150);
  });
});

describe("sibling request signature", () => {
  const path = "/v2/lain/app/blobs/sha256:" + "a".repeat(64);

  it("accepts what the same secret signed for the same method and path, within its validity", () => {
    const now = 1_800_000_000_000;
    const value = signSiblingRequest("shared", "GET", path, now);
    expect(siblingSignatureProblem("shared", "GET", path, value, now + 1000)).toBeUndefined();
    expect(siblingSignatureProblem("shared", "GET", path, value, now - 1000)).toBeUndefined();
  });

  it("refuses another secret, method or path, an old or future time, and malformed values", () => {
    const now = 1_800_000_000_000;
    const value = signSiblingRequest("shared", "GET", path, now);
    expect(siblingSignatureProblem("other", "GET", path, value, now)).toMatch(/does not match/);
    expect(siblingSignatureProblem("shared", "HEAD", path, value, now)).toMatch(/does not match/);
    expect(siblingSignatureProblem("shared", "GET", `${path}x`, value, now)).toMatch(/does not match/);
    expect(siblingSignatureProblem("shared", "GET", path, value, now + SIGNATURE_VALIDITY_MS + 1)).toMatch(/expired/);
    expect(siblingSignatureProblem("shared", "GET", path, value, now - SIGNATURE_VALIDITY_MS - 1)).toMatch(/expired/);
    for (const bad of ["", "x", `${now}`, `${now}.zz`, `${now}.${"0".repeat(63)}`, `-1.${"0".repeat(64)}`]) {
      expect(siblingSignatureProblem("shared", "GET", path, bad, now)).toMatch(/malformed/);
    }
  });
});
