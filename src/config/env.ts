import { STORAGE_DRIVERS, UNSUPPORTED_DRIVERS, type Spec } from "./schema.js";
import type { Problem } from "./validate.js";
import { parseYaml } from "./yaml.js";

const PREFIX = "REGISTRY_";

type Tree = Record<string, unknown>;

function child(tree: Tree, key: string): Tree {
  const existing = tree[key];
  if (typeof existing === "object" && existing !== null && !Array.isArray(existing)) return existing as Tree;
  const created: Tree = {};
  tree[key] = created;
  return created;
}

function parseValue(spec: Spec | undefined, text: string): unknown {
  if (spec?.kind === "string") return text;
  try {
    return parseYaml(text) ?? text;
  } catch {
    return text;
  }
}

/** Finds the key path an environment variable names, by walking the spec (keys hold no "_"). */
function resolvePath(spec: Spec, parts: string[]): { keys: string[]; leaf: Spec | undefined } | undefined {
  const keys: string[] = [];
  let node: Spec | undefined = spec;
  for (let i = 0; i < parts.length; i++) {
    const part = (parts[i] ?? "").toLowerCase();
    if (node?.kind === "object") {
      if (!(part in node.fields)) return undefined;
      keys.push(part);
      node = node.fields[part];
    } else if (node?.kind === "map" || node?.kind === "any") {
      // The rest names a key inside a free-form map (driver parameters, headers).
      keys.push(parts.slice(i).join("_").toLowerCase());
      return { keys, leaf: node.kind === "map" ? node.value : undefined };
    } else {
      return undefined;
    }
  }
  return { keys, leaf: node };
}

/**
 * distribution's environment overrides: REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/x sets
 * storage.filesystem.rootdirectory; REGISTRY_STORAGE=s3 switches the storage driver.
 * Applies them to `raw` in place and returns the variables it could not place.
 */
export function applyEnvironment(raw: Tree, env: NodeJS.ProcessEnv, spec: Spec): Problem[] {
  const unknown: Problem[] = [];
  const names = Object.keys(env).filter((k) => k.startsWith(PREFIX)).sort((a, b) => a.length - b.length);
  for (const name of names) {
    const value = env[name] ?? "";
    const parts = name.slice(PREFIX.length).split("_");
    if (parts.length === 1 && parts[0] === "STORAGE") {
      const driver = value.trim().toLowerCase();
      const storage = child(raw, "storage");
      for (const d of [...STORAGE_DRIVERS, ...UNSUPPORTED_DRIVERS]) if (d !== driver) delete storage[d];
      child(storage, driver);
      continue;
    }
    const resolved = resolvePath(spec, parts);
    if (!resolved || resolved.keys.length === 0) {
      unknown.push({ path: name, message: "environment variable names no configuration key, ignored" });
      continue;
    }
    const last = resolved.keys.pop() as string;
    let tree = raw;
    for (const key of resolved.keys) tree = child(tree, key);
    tree[last] = parseValue(resolved.leaf, value);
  }
  return unknown;
}
