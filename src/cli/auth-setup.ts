import type { Logger } from "pino";
import type { AccessController } from "../auth/authenticator.js";
import { SwitchableAuthenticator } from "../auth/switchable.js";
import type { TokenConfig } from "../auth/token.js";
import type { AuthConfig, RegistryConfig } from "../config/config.js";
import type { WatchedKey } from "../etcd/client.js";
import type { EtcdAuthValue } from "../config/etcd-overlay.js";

/**
 * The authentication the file configures (its files read: a ConfigError when one cannot be);
 * undefined: open. jose and bcryptjs load only for the controller that uses them.
 */
export async function authFromFile(auth: AuthConfig): Promise<AccessController | undefined> {
  if (auth.token) return tokenAuthenticator(auth.token);
  if (auth.htpasswd) return (await import("../auth/htpasswd.js")).HtpasswdAuthenticator.create(auth.htpasswd);
  return undefined;
}

async function tokenAuthenticator(config: TokenConfig): Promise<AccessController> {
  return (await import("../auth/token.js")).TokenAuthenticator.create(config);
}

/** The etcd value over auth.token: etcd's fields win, the file fills the rest (the cert bundle). */
function overlaid(file: AuthConfig["token"], value: EtcdAuthValue): TokenConfig {
  const realm = value.realm ?? file?.realm;
  const service = value.service ?? file?.service;
  const issuer = value.issuer ?? file?.issuer;
  if (!realm || !service || !issuer) throw new Error("realm, service and issuer are all needed (in etcd or in auth.token)");
  const rootCertBundle = value.rootcertbundle ?? file?.rootCertBundle;
  const jwks = file?.jwks;
  const autoRedirectPath = file?.autoRedirectPath;
  const signingAlgorithms = file?.signingAlgorithms;
  return {
    realm,
    service,
    issuer,
    ...(rootCertBundle ? { rootCertBundle } : {}),
    ...(jwks ? { jwks } : {}),
    ...(autoRedirectPath !== undefined ? { autoRedirectPath } : {}),
    ...(signingAlgorithms !== undefined ? { signingAlgorithms } : {}),
  };
}

export interface AuthSetup {
  authenticator: SwitchableAuthenticator;
  /** For GET /health: which auth is in force, from where, and how etcd stands. */
  health(): Record<string, unknown>;
  /** The etcd key the auth settings follow, with an `etcd` section. */
  watch?: WatchedKey;
  close(): void;
}

/** Which authentication is in force: none, htpasswd or token. */
export function mode(authenticator: AccessController | undefined): "none" | "htpasswd" | "token" {
  return authenticator?.kind ?? "none";
}

/**
 * Auth as configured in the file and, with an `etcd` section, as the LAIN console sets it in
 * etcd: the key's value applies to new requests within seconds of a change; deleting the key
 * returns to the file's settings; an unusable value keeps the last good ones.
 */
export async function setupAuth(config: RegistryConfig, file: AccessController | undefined, log: Logger): Promise<AuthSetup> {
  const authenticator = new SwitchableAuthenticator(file);
  let source = "file";
  const auth = () => ({ mode: mode(authenticator.active), source });
  if (!config.etcd) return { authenticator, health: () => ({ auth: auth() }), close: () => undefined };
  // etcd3 (and gRPC) load only for an `etcd` section.
  const { EtcdAuthOverlay } = await import("../config/etcd-overlay.js");
  const overlay = new EtcdAuthOverlay(
    config.etcd,
    async (value) => {
      if (value === null) {
        authenticator.replace(file);
        source = "file";
        log.info({ key: config.etcd?.authKey }, file ? "etcd auth key absent: using the file's auth settings" : "etcd auth key absent: auth off");
        return;
      }
      const token = overlaid(config.auth.token, value);
      authenticator.replace(await tokenAuthenticator(token));
      source = "etcd";
      log.info({ key: config.etcd?.authKey, realm: token.realm, service: token.service, issuer: token.issuer }, "token auth settings from etcd applied");
    },
    (message) => log.error(message),
  );
  overlay.start();
  return {
    authenticator,
    health: () => ({
      auth: auth(),
      etcd: { key: config.etcd?.authKey, connected: overlay.state.connected, ...(overlay.state.lastError ? { error: overlay.state.lastError } : {}) },
    }),
    watch: { key: config.etcd.authKey, connected: () => overlay.state.connected },
    close: () => overlay.close(),
  };
}
