import { describe, expect, it } from "vitest";
import { parseChallenge, UpstreamAuth } from "../../src/proxy/upstream-auth.js";

describe("WWW-Authenticate challenges", () => {
  it("reads a Bearer challenge with quoted and escaped parameters", () => {
    expect(parseChallenge('Bearer realm="https://auth.lain.local/token",service="registry",scope="repository:a/b:pull,push"')).toEqual({
      scheme: "bearer",
      params: { realm: "https://auth.lain.local/token", service: "registry", scope: "repository:a/b:pull,push" },
    });
    expect(parseChallenge('Basic realm="say \\"hi\\""')).toEqual({ scheme: "basic", params: { realm: 'say "hi"' } });
    expect(parseChallenge("Basic realm=plain")?.params.realm).toBe("plain");
  });
});

describe("UpstreamAuth", () => {
  const challenge = 'Bearer realm="http://127.0.0.1:1/token",service="peer"';

  it("stays anonymous until challenged, then asks the realm once per scope and reuses the token", async () => {
    const asked: string[] = [];
    const auth = new UpstreamAuth({ username: "u", password: "p" }, async (url, basic) => {
      asked.push(`${url.searchParams.get("scope")} ${basic}`);
      return { token: `t${asked.length}`, expiresInSeconds: 300 };
    });
    expect(await auth.header("repository:a:pull")).toBeUndefined();
    expect(auth.learn(challenge, "repository:a:pull", undefined)).toBe(true);
    expect(await auth.header("repository:a:pull")).toBe("Bearer t1");
    expect(await auth.header("repository:a:pull")).toBe("Bearer t1");
    expect(await auth.header("repository:b:pull")).toBe("Bearer t2");
    expect(asked).toEqual([`repository:a:pull Basic ${Buffer.from("u:p").toString("base64")}`, `repository:b:pull Basic ${Buffer.from("u:p").toString("base64")}`]);
  });

  it("fetches a new token once the cached one is about to expire, and after a refusal", async () => {
    let n = 0;
    const auth = new UpstreamAuth(undefined, async () => ({ token: `t${++n}`, expiresInSeconds: 5 }));
    auth.learn(challenge, "s", undefined);
    expect(await auth.header("s")).toBe("Bearer t1");
    // 5 s tokens are inside the 10 s safety margin: never reused.
    expect(await auth.header("s")).toBe("Bearer t2");
    expect(auth.learn(challenge, "s", "Bearer t2")).toBe(false);
  });

  it("shares one token request among concurrent requests for a scope", async () => {
    let calls = 0;
    const auth = new UpstreamAuth(undefined, async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 10));
      return { token: "shared", expiresInSeconds: 300 };
    });
    auth.learn(challenge, "s", undefined);
    expect(await Promise.all([auth.header("s"), auth.header("s"), auth.header("s")])).toEqual(["Bearer shared", "Bearer shared", "Bearer shared"]);
    expect(calls).toBe(1);
  });

  it("answers a Basic challenge with the configured credentials, and only once", () => {
    const withCredentials = new UpstreamAuth({ username: "u", password: "p" }, () => Promise.reject(new Error("no realm")));
    expect(withCredentials.learn('Basic realm="peer"', "s", undefined)).toBe(true);
    expect(withCredentials.learn('Basic realm="peer"', "s", "Basic x")).toBe(false);
    const anonymous = new UpstreamAuth(undefined, () => Promise.reject(new Error("no realm")));
    expect(anonymous.learn('Basic realm="peer"', "s", undefined)).toBe(false);
  });
});
