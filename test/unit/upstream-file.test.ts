import { describe, expect, it } from "vitest";
import { renderUpstream } from "../../src/cluster/upstream-block.js";

const at = (address: string, role: "primary" | "mirror") => ({ address, role, version: "0.1.0", started: "2026-11-28T00:00:00Z" });

describe("the nginx upstream block", () => {
  it("lists primaries as servers and mirrors as backups, sorted and without duplicates", () => {
    const text = renderUpstream("registry", [at("http://10.0.0.9:5000", "mirror"), at("http://10.0.0.2:5000", "primary"), at("http://10.0.0.1:5000", "primary"), at("http://10.0.0.1:5000/", "primary")]);
    expect(text).toBe(
      [
        "# written by lain-registry upstreams from etcd; do not edit",
        "upstream registry {",
        "    server 10.0.0.1:5000 max_fails=1 fail_timeout=5s;",
        "    server 10.0.0.2:5000 max_fails=1 fail_timeout=5s;",
        "    server 10.0.0.9:5000 backup;",
        "    keepalive 32;",
        "}",
        "",
      ].join("\n"),
    );
  });

  it("lets mirrors serve when no primary is registered, and writes nothing for no instance at all", () => {
    expect(renderUpstream("registry", [at("http://10.0.0.9:5000", "mirror")])).toContain("server 10.0.0.9:5000 max_fails=1 fail_timeout=5s;");
    expect(renderUpstream("registry", [])).toBeUndefined();
  });
});
