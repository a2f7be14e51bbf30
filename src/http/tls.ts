import { readFile } from "node:fs/promises";
import { createSecureContext, type TlsOptions } from "node:tls";
import { ConfigError } from "../refusal.js";
import type { TlsConfig } from "../config/config.js";

/** http.tls.minimumtls, in Node's words. */
const VERSIONS = { "tls1.0": "TLSv1", "tls1.1": "TLSv1.1", "tls1.2": "TLSv1.2", "tls1.3": "TLSv1.3" } as const;

/**
 * http.tls.ciphersuites takes Go's names (distribution's); OpenSSL calls the same suites these.
 * TLS 1.3 suites have one name in both. RC4 and 3DES suites are not offered by OpenSSL 3.
 */
const CIPHER_SUITES: Record<string, string> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
  TLS_RSA_WITH_AES_128_CBC_SHA256: "AES128-SHA256",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: "ECDHE-ECDSA-AES128-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: "ECDHE-RSA-AES128-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_AES_128_GCM_SHA256: "TLS_AES_128_GCM_SHA256",
  TLS_AES_256_GCM_SHA384: "TLS_AES_256_GCM_SHA384",
  TLS_CHACHA20_POLY1305_SHA256: "TLS_CHACHA20_POLY1305_SHA256",
};

async function readAt(path: string, key: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new ConfigError(key, `${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * The HTTPS server's options from http.tls: every file read and the whole set tried as a TLS
 * context, so a certificate without its key, a key of another certificate or an unknown suite
 * is a ConfigError at its key, before anything listens.
 */
export async function tlsServerOptions(tls: TlsConfig): Promise<TlsOptions> {
  const options: TlsOptions = { cert: await readAt(tls.certificate, "http.tls.certificate"), key: await readAt(tls.key, "http.tls.key") };
  if (tls.minimumTls) options.minVersion = VERSIONS[tls.minimumTls];
  if (tls.cipherSuites.length > 0) {
    const unknown = tls.cipherSuites.filter((name) => !(name in CIPHER_SUITES));
    if (unknown.length > 0) throw new ConfigError("http.tls.ciphersuites", `unknown or unavailable suites: ${unknown.join(", ")}`);
    options.ciphers = tls.cipherSuites.map((name) => CIPHER_SUITES[name]).join(":");
  }
  if (tls.clientCas.length > 0) {
    options.ca = await Promise.all(tls.clientCas.map((path, i) => readAt(path, `http.tls.clientcas[${i}]`)));
    // distribution's RequireAndVerifyClientCert.
    options.requestCert = true;
    options.rejectUnauthorized = true;
  }
  try {
    createSecureContext(options);
  } catch (err) {
    throw new ConfigError("http.tls", `the certificate, key, client CAs and suites do not make a TLS setup: ${(err as Error).message}`);
  }
  return options;
}
