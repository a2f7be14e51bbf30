import { execFileSync } from "node:child_process";

/**
 * Whether an external binary (skopeo, docker-registry, ...) is installed. Integration suites
 * skip without it on a developer box; with REQUIRE_INTEGRATION=1 (CI) a missing tool fails.
 */
export function hasTool(name: string): boolean {
  let found = true;
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
  } catch {
    found = false;
  }
  if (!found && process.env.REQUIRE_INTEGRATION === "1") {
    throw new Error(`${name} is required (REQUIRE_INTEGRATION=1) but not installed`);
  }
  return found;
}
