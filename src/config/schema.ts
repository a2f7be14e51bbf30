/**
 * distribution's configuration format (docs/configuration.md), as a tree that validation,
 * environment overrides and `config check` all walk. `status` says what we do with a key:
 * "planned" keys are accepted with a warning naming them until the feature lands; "refused"
 * ones are errors, because serving without what they ask for would be serving something else.
 * Every key distribution knows is here, so that any other key is a typo (an error); the planned
 * ones are the keys of distribution we deliberately ignore, listed once.
 */
export type Status = "implemented" | "planned" | "refused";

interface Common {
  status?: Status;
  /** Why a planned key has no effect yet, or why a refused one cannot be served: shown in the message. */
  note?: string;
  /** For a map whose unknown keys are errors, not warnings: what to say of one. */
  closed?: string;
}

export type Spec =
  | (Common & { kind: "string" | "bool" | "int" | "duration" | "room" | "any" | "stringList" })
  | (Common & { kind: "enum"; values: readonly string[] })
  | (Common & { kind: "object"; fields: Record<string, Spec> })
  | (Common & { kind: "map"; value: Spec })
  | (Common & { kind: "list"; item: Spec });

const str = { kind: "string" } as const;
const bool = { kind: "bool" } as const;
const int = { kind: "int" } as const;
const duration = { kind: "duration" } as const;
const any = { kind: "any" } as const;
const stringList = { kind: "stringList" } as const;
const room = { kind: "room" } as const;
const object = (fields: Record<string, Spec>): Spec => ({ kind: "object", fields });
const planned = (spec: Spec, note: string): Spec => ({ ...spec, status: "planned", note });
const refused = (spec: Spec, note: string): Spec => ({ ...spec, status: "refused", note });


/** distribution's (and LAIN's) default for storage.filesystem.rootdirectory. */
export const DEFAULT_ROOT_DIRECTORY = "/var/lib/registry";

export const STORAGE_DRIVERS = ["filesystem", "inmemory", "s3", "oss"] as const;
export const UNSUPPORTED_DRIVERS = ["azure", "gcs", "swift"] as const;

/** Besides these settings, every key of `storage` names a driver: an unknown one is an error, as in distribution. */
const storage: Spec = {
  kind: "object",
  closed: `is not a storage driver of this version (${STORAGE_DRIVERS.join(", ")})`,
  fields: {
    // minfree (ours): below this much free space /health says the store runs low.
    filesystem: object({ rootdirectory: str, maxthreads: int, minfree: room }),
    inmemory: any,
    s3: object({
      accesskey: str, secretkey: str, region: str, regionendpoint: str, forcepathstyle: bool, bucket: str,
      secure: bool, skipverify: bool, v4auth: bool, chunksize: int, multipartcopychunksize: int,
      multipartcopymaxconcurrency: int, multipartcopythresholdsize: int, rootdirectory: str,
      encrypt: bool, keyid: str, storageclass: str, sessiontoken: str,
      useragent: planned(str, "the SDK's user agent is sent"),
      usedualstack: planned(bool, "dual-stack endpoints are not chosen; give regionendpoint"),
      accelerate: planned(bool, "transfer acceleration endpoints are not chosen; give regionendpoint"),
      objectacl: planned(str, "objects get the bucket's default ACL"),
      loglevel: planned(str, "the SDK does not log; storage errors are in the registry's log"),
    }),
    oss: object({
      accesskeyid: str, accesskeysecret: str, region: str, endpoint: str, internal: any, cname: bool, bucket: str,
      encrypt: bool, encryptionkeyid: str, secure: bool, chunksize: int, rootdirectory: str,
    }),
    delete: object({ enabled: bool }),
    redirect: object({ disable: bool }),
    cache: object({
      blobdescriptor: { kind: "enum", values: ["inmemory", "redis"] },
      layerinfo: { kind: "enum", values: ["inmemory", "redis"] },
      blobdescriptorsize: int,
    }),
    maintenance: object({
      uploadpurging: object({ enabled: bool, age: duration, interval: duration, dryrun: bool }),
      readonly: object({ enabled: bool }),
    }),
    // Ours: garbage collection inside the server.
    gc: object({ enabled: bool, interval: duration, delay: duration }),
    // Ours: the scrub inside the server (rate in MiB/s).
    scrub: object({ enabled: bool, interval: duration, rate: int }),
    // Ours: which tags and manifests to keep (docs/retention.md); everything is kept by default.
    retention: object({
      enabled: bool,
      interval: duration,
      rules: {
        kind: "list",
        item: object({
          repositories: str,
          keep: object({ always: stringList, tags: str, newestpushed: int, newestpulled: int, pushedwithin: duration, pulledwithin: duration }),
          untagged: object({ olderthan: duration }),
          orphanreferrers: bool,
        }),
      },
    }),
    tag: planned(object({ concurrencylimit: int }), "tag lookups are not limited yet"),
    ...Object.fromEntries(UNSUPPORTED_DRIVERS.map((d) => [d, refused(any, `the ${d} storage driver is not supported (use filesystem, s3 or oss)`)])),
  },
};

const http = object({
  addr: str,
  net: { kind: "enum", values: ["tcp", "unix"] },
  host: str,
  prefix: str,
  secret: str,
  relativeurls: bool,
  draintimeout: duration,
  tls: object({
    certificate: str,
    key: str,
    clientcas: stringList,
    minimumtls: { kind: "enum", values: ["tls1.0", "tls1.1", "tls1.2", "tls1.3"] },
    ciphersuites: stringList,
    letsencrypt: refused(any, "Let's Encrypt is not supported: give http.tls.certificate and http.tls.key"),
    clientauth: planned(any, "with http.tls.clientcas, every client must present a certificate those CAs signed"),
  }),
  headers: { kind: "map", value: stringList },
  debug: object({ addr: str, prometheus: object({ enabled: bool, path: str }) }),
  http2: object({ disabled: bool }),
  h2c: planned(any, "HTTP/2 is served over TLS only"),
});

export const CONFIG_SPEC = object(
  {
    version: str,
    log: object({
      level: { kind: "enum", values: ["error", "warn", "info", "debug"] },
      formatter: { kind: "enum", values: ["text", "json", "logstash"] },
      fields: { kind: "map", value: any },
      accesslog: object({ disabled: bool }),
      hooks: planned(any, "log hooks are not implemented"),
      reportcaller: bool,
    }),
    loglevel: { kind: "enum", values: ["error", "warn", "info", "debug"] },
    storage,
    auth: object({
      token: object({
        realm: str, service: str, issuer: str, rootcertbundle: str, jwks: str,
        autoredirect: bool,
        autoredirectpath: str,
        signingalgorithms: stringList,
      }),
      htpasswd: object({ realm: str, path: str }),
      silly: refused(any, "the silly access controller (distribution's test aid) is not supported: it would leave the registry open"),
    }),
    middleware: planned(any, "middleware is not implemented"),
    reporting: planned(any, "bugsnag and newrelic reporting are not implemented"),
    http,
    notifications: object({
      events: object({ includereferences: bool }),
      endpoints: {
        kind: "list",
        item: object({
          name: str, disabled: bool, url: str, headers: { kind: "map", value: stringList },
          timeout: duration, threshold: int, backoff: duration,
          ignoredmediatypes: stringList,
          ignore: object({ mediatypes: stringList, actions: stringList }),
          // Ours: events kept for an endpoint that is down; the oldest go first.
          queuesize: int,
        }),
      },
    }),
    redis: planned(any, "redis is not used"),
    health: planned(any, "distribution's configurable health checks are not implemented; GET /health checks the store"),
    // distribution's remoteurl, username, password, ttl; the rest are lain-registry's own.
    proxy: object({
      // A list (ours): equivalent upstreams, tried in order.
      remoteurl: stringList, username: str, password: str, ttl: duration,
      namespaces: stringList, prefetch: stringList, maxconnections: int, spooldir: str,
      timeouts: object({ connect: duration, response: duration, idle: duration }),
      // Mirrored namespaces take no pushes unless this says so (a standby, with an auth section);
      // local is writeback's former name.
      pushes: { kind: "enum", values: ["refuse", "writeback", "local"] },
      // A users' listener beyond loopback without an auth section, on purpose.
      unauthenticated: bool,
      // A range of a blob this mirror lacks starts the whole blob's fill (false: keep only what is read).
      fillonrange: bool,
      siblings: object({ enabled: bool, firstbytetimeout: duration, addr: str, fanout: int }),
      exec: planned(any, "credential helpers are not run: give proxy.username and proxy.password"),
    }),
    catalog: object({ maxentries: int }),
    validation: planned(any, "manifest URL validation is not configurable yet"),
    policy: planned(any, "repository classes are not enforced"),
    // Schema 1 is refused outright, which is what these settings ask for.
    compatibility: object({ schema1: object({ signingkeyfile: str, enabled: bool, disablesignaturestore: bool }) }),
    etcd: object({
      endpoints: stringList, authkey: str, readonlykey: str, cafile: str, certfile: str, keyfile: str, username: str, password: str,
    }),
    // Ours: announce this instance in etcd for the load balancer's upstream file.
    cluster: object({ role: { kind: "enum", values: ["primary", "mirror"] }, advertise: str, prefix: str, drain: duration, ttl: duration }),
    // Ours: the web console.
    console: object({ enabled: bool, path: str }),
  },
);
