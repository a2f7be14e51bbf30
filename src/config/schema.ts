/**
 * distribution's configuration format (docs/configuration.md), as a tree that validation,
 * environment overrides and `config check` all walk. `status` says what we do with a key:
 * "planned" keys are accepted with a warning naming them until the feature lands.
 */
export type Status = "implemented" | "planned";

interface Common {
  status?: Status;
  /** Why a planned key has no effect yet, shown in the warning. */
  note?: string;
}

export type Spec =
  | (Common & { kind: "string" | "bool" | "int" | "duration" | "any" | "stringList" })
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
const object = (fields: Record<string, Spec>): Spec => ({ kind: "object", fields });
const planned = (spec: Spec, note: string): Spec => ({ ...spec, status: "planned", note });


/** distribution's (and LAIN's) default for storage.filesystem.rootdirectory. */
export const DEFAULT_ROOT_DIRECTORY = "/var/lib/registry";

export const STORAGE_DRIVERS = ["filesystem", "inmemory", "s3", "oss"] as const;
export const UNSUPPORTED_DRIVERS = ["azure", "gcs", "swift"] as const;

const storage = object({
  filesystem: object({ rootdirectory: str, maxthreads: int }),
  inmemory: any,
  s3: object({
      accesskey: str, secretkey: str, region: str, regionendpoint: str, forcepathstyle: bool, bucket: str,
      secure: bool, skipverify: bool, v4auth: bool, chunksize: int, multipartcopychunksize: int,
      multipartcopymaxconcurrency: int, multipartcopythresholdsize: int, rootdirectory: str,
      encrypt: bool, keyid: str, storageclass: str, useragent: str, usedualstack: bool,
      accelerate: bool, objectacl: str, loglevel: str, sessiontoken: str,
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
  tag: planned(object({ concurrencylimit: int }), "tag lookups are not limited yet"),
});

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
    clientcas: planned(stringList, "client certificate auth is not implemented"),
    minimumtls: str,
    ciphersuites: planned(stringList, "cipher suite selection is not implemented"),
    letsencrypt: planned(any, "Let's Encrypt is not implemented (these machines are offline)"),
  }),
  headers: { kind: "map", value: stringList },
  debug: object({ addr: str, prometheus: object({ enabled: bool, path: str }) }),
  http2: object({ disabled: bool }),
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
        signingalgorithms: planned(stringList, "the allowed algorithms are fixed (asymmetric only)"),
      }),
      htpasswd: object({ realm: str, path: str }),
      silly: planned(any, "the silly access controller is for testing and not implemented"),
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
      remoteurl: str, username: str, password: str, ttl: duration,
      namespaces: stringList, prefetch: stringList, maxconnections: int, spooldir: str,
      timeouts: object({ connect: duration, response: duration, idle: duration }),
    }),
    catalog: object({ maxentries: int }),
    validation: planned(any, "manifest URL validation is not configurable yet"),
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
