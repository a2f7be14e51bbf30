import { describe, expect, it } from "vitest";
import { createLogger, scrubSecrets } from "../../src/log.js";

function capture(level: "info" | "debug" = "debug") {
  const lines: string[] = [];
  const log = createLogger({ log: { level, formatter: "json", fields: { service: "registry" }, accessLogDisabled: false } }, { write: (line: string) => void lines.push(line) });
  return { log, lines };
}

describe("logger", () => {
  it("writes log.fields on every line and honours log.level", () => {
    const { log, lines } = capture("info");
    log.debug("hidden");
    log.info({ repository: "a/b" }, "shown");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({ service: "registry", repository: "a/b", msg: "shown", level: 30 });
  });

  it("never writes secret keys, Authorization values or credentials in URLs", () => {
    const { log, lines } = capture();
    log.info({ password: "p4ss-top", authorization: "Basic YWxpY2U6cDRzcw==", headers: { authorization: "Bearer abcdefgh123" } }, "keys");
    log.info({ proxy: { password: "p4ss-nested", secretkey: "s3cr3t-key", accesskeysecret: "oss-s3cret" } }, "nested keys");
    log.warn({ err: "connect to https://mirror:hunter2-pw@peer.example failed" }, "upstream https://u:pw-in-msg@peer.example down");
    log.info("client sent Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig-part and Basic YWxpY2U6d29uZGVy");
    const text = lines.join("");
    for (const secret of ["p4ss-top", "YWxpY2U6cDRzcw", "abcdefgh123", "p4ss-nested", "s3cr3t-key", "oss-s3cret", "hunter2-pw", "pw-in-msg", "eyJhbGciOi", "YWxpY2U6d29uZGVy"]) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain("[redacted]");
    expect(text).toContain("https://[redacted]@peer.example");
  });

  it("leaves ordinary text alone", () => {
    const line = '{"msg":"GET /v2/library/node/manifests/20 from https://registry.example:5000 took 3 ms"}';
    expect(scrubSecrets(line)).toBe(line);
  });
});
