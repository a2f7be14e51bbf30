import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, errorCode } from "../helpers/http.js";
import { pushImage, randomImage } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

describe("web console endpoints", () => {
  let on: TestRegistry;
  let off: TestRegistry;

  beforeAll(async () => {
    on = await startTestRegistry({ storage: "inmemory", extraYaml: "console: {enabled: true}" });
    off = await startTestRegistry({ storage: "inmemory" });
    await pushImage(on.url, "lain/app", "v1", randomImage({ layers: 1 }));
  });
  afterAll(async () => {
    await on.close();
    await off.close();
  });

  it("serves the page and its files from memory, with a policy that allows nothing from elsewhere", async () => {
    const page = await call("GET", `${on.url}/ui/`);
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(page.text).toContain('<script type="module" src="app.js">');
    const script = await call("GET", `${on.url}/ui/app.js`);
    expect(script.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect((await call("GET", `${on.url}/ui/app.js`, { headers: { "if-none-match": script.headers.etag ?? "" } })).status).toBe(304);
    expect((await call("GET", `${on.url}/ui`)).headers.location).toBe("/ui/");
  });

  it("is absent unless console.enabled", async () => {
    expect((await call("GET", `${off.url}/ui/`)).status).toBe(404);
    expect((await call("GET", `${off.url}/ui/api/info`)).status).toBe(404);
  });

  it("answers its API, and bad input with spec errors, never a file outside its folder", async () => {
    expect((await call("GET", `${on.url}/ui/api/info`)).json()).toMatchObject({ role: "primary", auth: "none" });
    const tags = (await call("GET", `${on.url}/ui/api/tags/lain/app`)).json<{ tags: Array<{ tag: string }> }>();
    expect(tags.tags.map((t) => t.tag)).toEqual(["v1"]);
    expect(errorCode(await call("GET", `${on.url}/ui/api/tags/Bad..Name`))).toBe("NAME_INVALID");
    expect(errorCode(await call("GET", `${on.url}/ui/api/tags/lain/none`))).toBe("NAME_UNKNOWN");
    expect(errorCode(await call("GET", `${on.url}/ui/api/tags/lain/app?n=many`))).toBe("PAGINATION_NUMBER_INVALID");
    expect((await call("GET", `${on.url}/ui/api/nothing`)).status).toBe(404);
    const notJson = await call("POST", `${on.url}/ui/api/token`, { body: "user=alice" });
    expect([notJson.status, errorCode(notJson)]).toEqual([400, "UNSUPPORTED"]);
    // No token auth here: nothing to forward a login to.
    expect((await call("POST", `${on.url}/ui/api/token`, { body: JSON.stringify({ username: "a", password: "b", scope: "" }) })).status).toBe(405);
    for (const path of ["/ui/..%2Fpackage.json", "/ui/%2e%2e/%2e%2e/etc/passwd", "/ui/index.html%00", "/ui/app.js/x"]) {
      expect((await call("GET", `${on.url}${path}`)).status, path).toBe(404);
    }
    expect((await call("DELETE", `${on.url}/ui/app.js`)).status).toBe(404);
  });
});
