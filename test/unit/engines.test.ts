import { describe, expect, it } from "vitest";
import { isSupported, refusal } from "../../launcher/engines.js";

describe("the Nodes the project supports (package.json's engines, >=22.19.0)", () => {
  it.each([
    ["v24.0.0", true],
    ["v22.19.0", true],
    ["v22.20.1", true],
    ["23.0.0", true],
    ["v22.18.9", false],
    ["v20.20.2", false],
    ["v18.19.0", false],
  ])("%s: %s", (version, supported) => {
    expect(isSupported(version)).toBe(supported);
  });

  it("a refusal names the oldest supported Node and the one running", () => {
    expect(refusal()).toBe(`lain-registry needs Node.js >= 22.19 (this is ${process.version})`);
  });
});
