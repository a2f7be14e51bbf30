import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { goDuration } from "../../src/http/log-fields.js";
import { clientAddress } from "../../src/http/urls.js";

describe("distribution's log fields", () => {
  it("http.response.duration is written as Go writes a duration", () => {
    expect(goDuration(0n)).toBe("0ns");
    expect(goDuration(999n)).toBe("999ns");
    expect(goDuration(350_000n)).toBe("350µs");
    expect(goDuration(1_234_567n)).toBe("1.234567ms");
    expect(goDuration(12_500_000n)).toBe("12.5ms");
    expect(goDuration(2_117_177_559n)).toBe("2.117177559s");
    expect(goDuration(60_000_000_000n)).toBe("1m0s");
    expect(goDuration(123_500_000_000n)).toBe("2m3.5s");
    expect(goDuration(3_723_000_000_000n)).toBe("1h2m3s");
  });

  it("http.request.remoteaddr: the first X-Forwarded-For IP, else X-Real-IP, else the peer's address and port", () => {
    const req = (headers: Record<string, string>, remoteAddress = "10.0.0.9", remotePort = 41234) =>
      ({ headers, socket: { remoteAddress, remotePort } }) as unknown as IncomingMessage;
    expect(clientAddress(req({ "x-forwarded-for": "192.0.2.1, 10.0.0.1", "x-real-ip": "192.0.2.7" }))).toBe("192.0.2.1");
    expect(clientAddress(req({ "x-forwarded-for": "not an ip", "x-real-ip": "192.0.2.7" }))).toBe("192.0.2.7");
    expect(clientAddress(req({}))).toBe("10.0.0.9:41234");
    expect(clientAddress(req({}, "::1", 5000))).toBe("[::1]:5000");
  });

  it("a request whose connection is gone (its socket detached) has no peer address, and no error", () => {
    const gone = { headers: {}, socket: null } as unknown as IncomingMessage;
    expect(clientAddress(gone)).toBeUndefined();
  });
});
