import { describe, expect, it } from "vitest";
import { packUploadState, unpackUploadState } from "../../src/registry/upload-state.js";

const state = { Name: "a/b", UUID: "6f1c3e0e-2d7a-4d59-9b1b-0d5b6b7f1a11", Offset: 42, StartedAt: "2026-01-01T00:00:00.000Z" };

describe("upload _state token", () => {
  it("round-trips with the same secret", () => {
    expect(unpackUploadState("s3cret", packUploadState("s3cret", state))).toEqual(state);
  });

  it("is refused with another secret or when tampered with", () => {
    const token = packUploadState("s3cret", state);
    expect(unpackUploadState("other", token)).toBeUndefined();
    const raw = Buffer.from(token, "base64url");
    raw.writeUInt8(raw.readUInt8(raw.length - 3) ^ 1, raw.length - 3);
    expect(unpackUploadState("s3cret", raw.toString("base64url"))).toBeUndefined();
    expect(unpackUploadState("s3cret", "garbage")).toBeUndefined();
  });

  it("uses Go's padded URL-safe base64, which distribution's decoder requires", () => {
    const token = packUploadState("s3cret", { ...state, Name: "ab" });
    expect(token).toMatch(/^[A-Za-z0-9_-]+=*$/);
    expect(token.length % 4).toBe(0);
  });
});
