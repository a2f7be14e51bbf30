import { describe, expect, it } from "vitest";
import { digestOf, parseDigest } from "../../src/registry/digest.js";
import { isRepositoryName, isTag, parseReference } from "../../src/registry/names.js";
import { compareRepositoryNames } from "../../src/registry/catalog.js";

describe("digest grammar", () => {
  it("accepts sha256 and sha512 with lowercase hex of the right length", () => {
    expect(parseDigest(`sha256:${"a".repeat(64)}`).ok).toBe(true);
    expect(parseDigest(`sha512:${"0".repeat(128)}`).ok).toBe(true);
  });

  it.each([
    ["wrong length", `sha256:${"a".repeat(63)}`],
    ["uppercase hex", `sha256:${"A".repeat(64)}`],
    ["unknown algorithm", `md5:${"a".repeat(32)}`],
    ["no algorithm", "a".repeat(64)],
    ["path traversal", "sha256:../../etc/passwd"],
    ["empty", ""],
  ])("refuses %s", (_, value) => {
    expect(parseDigest(value).ok).toBe(false);
  });

  it("computes the digest of content", () => {
    expect(digestOf(Buffer.from(""))).toBe("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });
});

describe("repository name grammar", () => {
  it.each(["library/ubuntu", "a", "a0/b-c/d__e/f.g", "lain/registry", "x".repeat(255)])("accepts %s", (name) => {
    expect(isRepositoryName(name)).toBe(true);
  });

  it.each(["", "UPPER", "../etc", "a/../b", "a//b", "/a", "a/", "-a", "a-", "a..b", "a%2Fb", "x".repeat(256)])(
    "refuses %j",
    (name) => {
      expect(isRepositoryName(name)).toBe(false);
    },
  );
});

describe("tag grammar", () => {
  it("accepts up to 128 characters starting with a word character", () => {
    expect(isTag("latest")).toBe(true);
    expect(isTag("v1.2.3-rc_1")).toBe(true);
    expect(isTag("_x")).toBe(true);
    expect(isTag("a".repeat(128))).toBe(true);
  });

  it("refuses dots first, slashes, and overlong tags", () => {
    expect(isTag(".hidden")).toBe(false);
    expect(isTag("..")).toBe(false);
    expect(isTag("a/b")).toBe(false);
    expect(isTag("a".repeat(129))).toBe(false);
    expect(isTag("")).toBe(false);
  });
});

describe("catalog order", () => {
  it("sorts path-aware as distribution does: a < a/b < a-c", () => {
    expect(["a-c", "a/b", "a"].sort(compareRepositoryNames)).toEqual(["a", "a/b", "a-c"]);
  });
});

describe("references (name:tag, name@digest)", () => {
  const digest = `sha256:${"a".repeat(64)}`;

  it("splits at the last colon, so a name with a port-like part stays whole", () => {
    expect(parseReference("lain/registry:v2.0")).toEqual({ name: "lain/registry", reference: "v2.0" });
    expect(parseReference(`lain/app@${digest}`)).toEqual({ name: "lain/app", reference: digest });
  });

  it("refuses references without a tag or digest, and bad parts", () => {
    for (const bad of ["lain/app", "Lain/app:v1", "lain/app:", "lain/app:.v1", "lain/app@sha256:short", ":v1", `@${digest}`]) {
      expect(parseReference(bad), bad).toBeUndefined();
    }
  });
});
