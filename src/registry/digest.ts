import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";

/** A content digest such as "sha256:<64 hex>", checked against the OCI digest grammar. */
export type Digest = string & { readonly __digest: unique symbol };
export type DigestAlgorithm = "sha256" | "sha512";

export const DEFAULT_ALGORITHM: DigestAlgorithm = "sha256";

const ENCODED_PATTERN: Record<DigestAlgorithm, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

// OCI image-spec descriptor.md: algorithm-component ( algorithm-separator algorithm-component )*
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export type DigestParse =
  | { ok: true; digest: Digest }
  | { ok: false; reason: string };

export function parseDigest(value: string): DigestParse {
  if (!DIGEST_GRAMMAR.test(value)) return { ok: false, reason: `invalid digest format: ${JSON.stringify(value)}` };
  const colon = value.indexOf(":");
  const algorithm = value.slice(0, colon);
  const encoded = value.slice(colon + 1);
  if (algorithm !== "sha256" && algorithm !== "sha512") {
    return { ok: false, reason: `unsupported digest algorithm: ${algorithm}` };
  }
  if (!ENCODED_PATTERN[algorithm].test(encoded)) {
    return { ok: false, reason: `invalid ${algorithm} digest: ${JSON.stringify(value)}` };
  }
  return { ok: true, digest: value as Digest };
}

export function isDigest(value: string): value is Digest {
  return parseDigest(value).ok;
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(":")) as DigestAlgorithm;
}

export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(":") + 1);
}

export function newHash(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function hashToDigest(algorithm: DigestAlgorithm, hash: Hash): Digest {
  return `${algorithm}:${hash.digest("hex")}` as Digest;
}

export function digestOf(content: Buffer, algorithm: DigestAlgorithm = DEFAULT_ALGORITHM): Digest {
  return hashToDigest(algorithm, newHash(algorithm).update(content));
}

/** A pass-through stream that feeds every chunk to a hash on its way. */
export class HashingStream extends Transform {
  constructor(readonly hash: Hash) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    callback(null, chunk);
  }
}
