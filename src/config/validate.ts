import { parseReference } from "../registry/names.js";
import { parseDuration } from "./duration.js";
import { parseRoom } from "./room.js";
import { parseListenAddress } from "./listen-address.js";
import { DEFAULT_ROOT_DIRECTORY, STORAGE_DRIVERS, UNSUPPORTED_DRIVERS, type Spec } from "./schema.js";
import { nearest } from "./suggest.js";

export interface Problem {
  path: string;
  message: string;
  /** A store or address not there yet (NotYetAvailable): a restart may help. */
  transient?: boolean;
}

export interface Findings {
  errors: Problem[];
  warnings: Problem[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function join(path: string, key: string | number): string {
  return typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

export function describe(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "a list" : typeof value === "object" ? "a map" : JSON.stringify(value);
}

/**
 * distribution reads its file (and REGISTRY_* values) as YAML 1.1, where yes, on, y and their
 * capitalisations are booleans too; js-yaml reads YAML 1.2, where they are strings. A boolean key
 * takes them as distribution does, so its configurations load unchanged.
 */
const YAML11_BOOLEANS = new Map([
  ...["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"].map((word) => [word, true] as const),
  ...["n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"].map((word) => [word, false] as const),
]);

/** Booleans and integers may arrive as strings from environment variables or loose YAML. */
export function asBool(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  return typeof value === "string" ? YAML11_BOOLEANS.get(value) : undefined;
}

export function asInt(value: unknown): number | undefined {
  const n = typeof value === "string" && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  return typeof n === "number" && Number.isSafeInteger(n) ? n : undefined;
}

function checkScalar(spec: Spec, value: unknown): string | undefined {
  switch (spec.kind) {
    case "string":
      return typeof value === "string" || typeof value === "number" ? undefined : `must be a string, not ${describe(value)}`;
    case "bool":
      return asBool(value) === undefined ? `must be true or false, not ${describe(value)}` : undefined;
    case "int":
      return asInt(value) === undefined ? `must be an integer, not ${describe(value)}` : undefined;
    case "duration":
      return (typeof value === "string" || typeof value === "number") && parseDuration(value) !== undefined
        ? undefined
        : `must be a duration such as 30s, 10m or 24h, not ${describe(value)}`;
    case "room":
      return (typeof value === "string" || typeof value === "number") && parseRoom(value) !== undefined
        ? undefined
        : `must be a share of the volume such as 10%, or a size such as 5GiB, not ${describe(value)}`;
    case "enum":
      return typeof value === "string" && spec.values.includes(value)
        ? undefined
        : `must be one of ${spec.values.join(", ")}, not ${describe(value)}`;
    case "stringList":
      return typeof value === "string" || (Array.isArray(value) && value.every((v) => typeof v === "string"))
        ? undefined
        : `must be a list of strings, not ${describe(value)}`;
    default:
      return undefined;
  }
}

/** Every key path of a spec where `key` is a field: where a key put at the wrong level belongs. */
function pathsOf(spec: Spec, key: string, path = ""): string[] {
  if (spec.kind !== "object") return [];
  return Object.entries(spec.fields).flatMap(([field, child]) => [...(field === key ? [join(path, field)] : []), ...pathsOf(child, key, join(path, field))]);
}

/**
 * A key no spec knows is an error, not a warning: distribution ignores it silently, and a typo
 * then serves another registry than the one written (`rootdirectry` an empty default store,
 * `htpp` every interface, `delete.enable` no deletes). Near misses get their likely meaning.
 */
function unknownKey(spec: Spec & { kind: "object" }, key: string, path: string, root: Spec): string {
  const sibling = nearest(key, Object.keys(spec.fields));
  const elsewhere = sibling ? [] : pathsOf(root, key).slice(0, 2);
  const hint = sibling ? `; did you mean ${join(path, sibling)}?` : elsewhere.length > 0 ? `; it belongs at ${elsewhere.join(" or ")}` : "";
  return `${spec.closed ?? "unknown key"}${hint}`;
}

function walk(spec: Spec, value: unknown, path: string, out: Findings, root: Spec = spec): void {
  if (spec.status === "planned") {
    out.warnings.push({ path, message: `accepted but not implemented yet: ${spec.note ?? "no effect"}` });
  }
  if (spec.status === "refused") {
    out.errors.push({ path, message: `refused: ${spec.note ?? "not supported"}` });
    return;
  }
  if (value === null || value === undefined) return;
  switch (spec.kind) {
    case "object": {
      if (!isObject(value)) {
        out.errors.push({ path, message: `must be a map, not ${describe(value)}` });
        return;
      }
      for (const [key, child] of Object.entries(value)) {
        // Top-level x- keys hold YAML anchors for the rest of the file, as in compose files.
        if (path === "" && key.startsWith("x-")) continue;
        const childSpec = spec.fields[key];
        if (childSpec) walk(childSpec, child, join(path, key), out, root);
        else out.errors.push({ path: join(path, key), message: unknownKey(spec, key, path, root) });
      }
      return;
    }
    case "map": {
      if (!isObject(value)) {
        out.errors.push({ path, message: `must be a map, not ${describe(value)}` });
        return;
      }
      for (const [key, child] of Object.entries(value)) walk(spec.value, child, join(path, key), out, root);
      return;
    }
    case "list": {
      if (!Array.isArray(value)) {
        out.errors.push({ path, message: `must be a list, not ${describe(value)}` });
        return;
      }
      value.forEach((item, i) => walk(spec.item, item, join(path, i), out, root));
      return;
    }
    default: {
      const message = checkScalar(spec, value);
      if (message) out.errors.push({ path, message });
    }
  }
}

/** Each rule's patterns compile, and its counts are counts. */
function checkRetention(retention: Record<string, unknown>, out: Findings): void {
  if (!Array.isArray(retention.rules)) return;
  retention.rules.forEach((rule: unknown, i) => {
    if (!isObject(rule)) return;
    const at = `${join("storage.retention.rules", i)}.`;
    const pattern = (path: string, value: unknown) => {
      if (value === undefined || value === null) return;
      try {
        new RegExp(`^(?:${String(value)})$`);
      } catch (err) {
        out.errors.push({ path: `${at}${path}`, message: `is not a regular expression: ${(err as Error).message}` });
      }
    };
    pattern("repositories", rule.repositories);
    if (!isObject(rule.keep)) return;
    pattern("keep.tags", rule.keep.tags);
    if (Array.isArray(rule.keep.always)) rule.keep.always.forEach((p, j) => pattern(`keep.always.${j}`, p));
    for (const key of ["newestpushed", "newestpulled"]) {
      if (rule.keep[key] !== undefined && Number(rule.keep[key]) < 0) out.errors.push({ path: `${at}keep.${key}`, message: "must be 0 or more" });
    }
  });
}

function checkStorage(storage: unknown, out: Findings): void {
  if (storage === undefined || storage === null) {
    out.warnings.push({ path: "storage", message: `missing: using filesystem at ${DEFAULT_ROOT_DIRECTORY}` });
    return;
  }
  if (!isObject(storage)) return;
  if (isObject(storage.retention)) checkRetention(storage.retention, out);
  if (isObject(storage.scrub) && storage.scrub.rate !== undefined && Number(storage.scrub.rate) < 1) {
    out.errors.push({ path: "storage.scrub.rate", message: "must be at least 1 (MiB/s of blobs read)" });
  }
  const unsupported = UNSUPPORTED_DRIVERS.filter((d) => d in storage);
  const drivers = STORAGE_DRIVERS.filter((d) => d in storage);
  if (drivers.length + unsupported.length === 0) {
    out.warnings.push({ path: "storage", message: `no storage driver: using filesystem at ${DEFAULT_ROOT_DIRECTORY}` });
  } else if (drivers.length > 1) {
    out.errors.push({ path: "storage", message: `has ${drivers.length} storage drivers (${drivers.join(", ")}); keep exactly one` });
  }
  const filesystem = storage.filesystem;
  if (drivers[0] === "filesystem" && isObject(filesystem) && filesystem.rootdirectory === "") {
    out.errors.push({ path: "storage.filesystem.rootdirectory", message: "must not be empty" });
  }
  const oss = storage.oss;
  // The LAIN README's sample puts a sentence here: it means false, and the reader is told so.
  if (isObject(oss) && oss.internal !== undefined && oss.internal !== null && asBool(oss.internal) === undefined) {
    out.warnings.push({ path: "storage.oss.internal", message: `${describe(oss.internal)} is not true or false: the public endpoint is used (write true for the region's internal one)` });
  }
  const cache = storage.cache;
  if (isObject(cache) && [cache.blobdescriptor, cache.layerinfo].includes("redis")) {
    out.warnings.push({ path: "storage.cache", message: "redis is not supported: the registry runs without a descriptor cache" });
  }
}

/** A listen address: "host:port" or ":port" on TCP (a socket path with http.net: unix). */
function checkListen(path: string, addr: unknown, out: Findings): void {
  // Not a string at all: walk() has said so.
  if (typeof addr !== "string" && typeof addr !== "number") return;
  if (!parseListenAddress(String(addr))) out.errors.push({ path, message: `must be host:port or :port (a port from 0 to 65535), not ${describe(addr)}` });
}

function checkHttp(http: unknown, out: Findings): void {
  if (!isObject(http)) {
    out.warnings.push({ path: "http.secret", message: "not set: a random one is used; instances sharing this store cannot continue each other's uploads" });
    return;
  }
  if (http.net !== "unix") checkListen("http.addr", http.addr, out);
  if (isObject(http.debug)) checkListen("http.debug.addr", http.debug.addr, out);
  if (http.secret === undefined || http.secret === null || http.secret === "") {
    out.warnings.push({ path: "http.secret", message: "not set: a random one is used; instances sharing this store cannot continue each other's uploads" });
  }
  if (http.host !== undefined && http.host !== null) checkHttpUrl("http.host", http.host, "", out);
  const tls = http.tls;
  if (isObject(tls)) {
    // Half of a pair would serve plain HTTP where HTTPS was asked for.
    if (tls.certificate && !tls.key) out.errors.push({ path: "http.tls.key", message: "is required with http.tls.certificate" });
    if (tls.key && !tls.certificate) out.errors.push({ path: "http.tls.certificate", message: "is required with http.tls.key" });
    for (const key of ["clientcas", "minimumtls", "ciphersuites"]) {
      if (tls[key] !== undefined && !tls.certificate && !tls.key) out.errors.push({ path: `http.tls.${key}`, message: "needs http.tls.certificate and http.tls.key" });
    }
  }
}

function checkEtcd(etcd: unknown, out: Findings): void {
  if (!isObject(etcd)) return;
  if (etcd.certfile && !etcd.keyfile) out.errors.push({ path: "etcd.keyfile", message: "is required with etcd.certfile" });
  if (etcd.keyfile && !etcd.certfile) out.errors.push({ path: "etcd.certfile", message: "is required with etcd.keyfile" });
  if ((etcd.certfile || etcd.keyfile) && !etcd.cafile) out.errors.push({ path: "etcd.cafile", message: "is required for TLS to etcd (with etcd.certfile and etcd.keyfile)" });
}

function checkAuth(auth: unknown, out: Findings): void {
  if (!isObject(auth)) return;
  const methods = ["token", "htpasswd"].filter((m) => isObject(auth[m]));
  if (methods.length > 1) out.errors.push({ path: "auth", message: `has ${methods.join(" and ")}; distribution allows one access controller` });
  const token = auth.token;
  if (isObject(token)) {
    for (const key of ["realm", "service", "issuer"]) {
      if (!token[key]) out.errors.push({ path: `auth.token.${key}`, message: "is required" });
    }
    if (!token.rootcertbundle && !token.jwks) out.errors.push({ path: "auth.token", message: "needs rootcertbundle or jwks to verify tokens" });
  }
  const htpasswd = auth.htpasswd;
  if (isObject(htpasswd)) {
    for (const key of ["realm", "path"]) {
      if (!htpasswd[key]) out.errors.push({ path: `auth.htpasswd.${key}`, message: "is required" });
    }
  }
}

/** A required http(s) URL setting. */
function checkHttpUrl(path: string, value: unknown, missing: string, out: Findings): void {
  if (!value) out.errors.push({ path, message: missing ? `is required: ${missing}` : "must not be empty" });
  else if (!URL.canParse(String(value)) || !/^https?:$/.test(new URL(String(value)).protocol)) {
    out.errors.push({ path, message: `must be an http:// or https:// URL, not ${describe(value)}` });
  }
}

function checkCluster(raw: Record<string, unknown>, out: Findings): void {
  const cluster = raw.cluster;
  if (!isObject(cluster)) return;
  if (!isObject(raw.etcd)) out.errors.push({ path: "cluster", message: "needs an etcd section: instances announce themselves in etcd" });
  checkHttpUrl("cluster.advertise", cluster.advertise, "the URL the load balancer should use for this instance", out);
}

function checkProxy(proxy: unknown, out: Findings): void {
  if (!isObject(proxy)) return;
  const urls = proxy.remoteurl;
  if (Array.isArray(urls) && urls.length > 0) urls.forEach((url, i) => checkHttpUrl(join("proxy.remoteurl", i), url, "", out));
  else if (typeof urls === "string" && urls.includes(",")) urls.split(",").forEach((url, i) => checkHttpUrl(join("proxy.remoteurl", i), url.trim(), "", out));
  else checkHttpUrl("proxy.remoteurl", Array.isArray(urls) ? undefined : urls, "the URL of the registry to pull through from", out);
  if (Array.isArray(proxy.prefetch)) {
    proxy.prefetch.forEach((entry, i) => {
      if (!parseReference(String(entry))) {
        out.errors.push({ path: join("proxy.prefetch", i), message: `must be repository:tag or repository@digest, not ${describe(entry)}` });
      }
    });
  }
  if (proxy.maxconnections !== undefined && Number(proxy.maxconnections) < 1) {
    out.errors.push({ path: "proxy.maxconnections", message: "must be at least 1" });
  }
  if (isObject(proxy.siblings) && proxy.siblings.fanout !== undefined && Number(proxy.siblings.fanout) < 1) {
    out.errors.push({ path: "proxy.siblings.fanout", message: "must be at least 1 (sibling streams of one blob served at once)" });
  }
}

/** An access controller in the file (the etcd overlay may be absent, and then nobody is asked). */
function hasAuthSection(raw: Record<string, unknown>): boolean {
  const auth = raw.auth;
  return isObject(auth) && (isObject(auth.token) || isObject(auth.htpasswd));
}

/** A standby that takes pushes in mirrored namespaces takes them from its users only. */
function checkPushes(raw: Record<string, unknown>, out: Findings): void {
  const proxy = raw.proxy;
  if (!isObject(proxy) || (proxy.pushes !== "writeback" && proxy.pushes !== "local") || hasAuthSection(raw)) return;
  out.errors.push({
    path: "proxy.pushes",
    message: `${String(proxy.pushes)} needs an auth section (auth.token or auth.htpasswd): without one, anyone who reaches this mirror could push over what it mirrors`,
  });
}

/** Two listeners of this configuration on one port would fail at start with "in use". */
function sameListener(a: string, b: string): boolean {
  const [x, y] = [parseListenAddress(a), parseListenAddress(b)];
  return x !== undefined && y !== undefined && x.port === y.port && x.port !== 0 && (x.host === undefined || y.host === undefined || x.host === y.host);
}

/** Mirrors find each other in etcd and sign their requests to each other with the shared http.secret. */
function checkSiblings(raw: Record<string, unknown>, out: Findings): void {
  const proxy = raw.proxy;
  if (!isObject(proxy) || !isObject(proxy.siblings)) return;
  const { addr } = proxy.siblings;
  const enabled = asBool(proxy.siblings.enabled) === true;
  if (addr !== undefined && addr !== null) {
    checkListen("proxy.siblings.addr", addr, out);
    const http = isObject(raw.http) ? raw.http : {};
    const users = http.net === "unix" ? undefined : String(http.addr ?? ":5000");
    if (users !== undefined && sameListener(String(addr), users)) out.errors.push({ path: "proxy.siblings.addr", message: `must be another port than http.addr (${users}): the siblings' listener is a door of its own` });
    if (!enabled) out.warnings.push({ path: "proxy.siblings.addr", message: "has no effect without proxy.siblings.enabled: true" });
  }
  if (!enabled) return;
  const path = "proxy.siblings.enabled";
  const cluster = raw.cluster;
  if (!isObject(cluster)) out.errors.push({ path, message: "needs a cluster section (and etcd): mirrors find their siblings among the registrations in etcd" });
  else if (cluster.role !== undefined && cluster.role !== "mirror") out.errors.push({ path, message: `needs cluster.role: mirror, not ${describe(cluster.role)}` });
  const http = raw.http;
  if (!isObject(http) || !http.secret) {
    out.errors.push({ path, message: "needs http.secret, the same on every mirror: siblings sign their requests to each other with it" });
  }
}

function checkNotifications(notifications: unknown, out: Findings): void {
  if (!isObject(notifications) || !Array.isArray(notifications.endpoints)) return;
  const names = new Set<string>();
  notifications.endpoints.forEach((endpoint: unknown, i) => {
    if (!isObject(endpoint)) return;
    const path = join("notifications.endpoints", i);
    if (!endpoint.name) out.errors.push({ path: `${path}.name`, message: "is required: it names the endpoint in logs and metrics" });
    else if (names.has(String(endpoint.name))) out.errors.push({ path: `${path}.name`, message: `${describe(endpoint.name)} names another endpoint too` });
    names.add(String(endpoint.name));
    checkHttpUrl(`${path}.url`, endpoint.url, "where events are POSTed", out);
  });
}

/** Every problem of a raw (parsed YAML) configuration, each with its key path. */
export function validate(spec: Spec, raw: unknown): Findings {
  const out: Findings = { errors: [], warnings: [] };
  if (!isObject(raw)) {
    out.errors.push({ path: "", message: `the configuration must be a map, not ${describe(raw)}` });
    return out;
  }
  walk(spec, raw, "", out);
  // LAIN's README shows config fragments without a version; distribution's only version is 0.1.
  if (raw.version === undefined || raw.version === null) {
    out.warnings.push({ path: "version", message: "missing: assuming 0.1" });
  } else if (String(raw.version) !== "0.1") {
    out.errors.push({ path: "version", message: `must be 0.1 (distribution's only configuration version), not ${describe(raw.version)}` });
  }
  checkStorage(raw.storage, out);
  checkHttp(raw.http, out);
  checkEtcd(raw.etcd, out);
  checkAuth(raw.auth, out);
  checkProxy(raw.proxy, out);
  checkCluster(raw, out);
  checkSiblings(raw, out);
  checkPushes(raw, out);
  checkNotifications(raw.notifications, out);
  return out;
}
