import { isDigest, type Digest } from "./digest.js";

/**
 * Grammars from the OCI distribution-spec ("Pulling manifests"): repository names, tags and
 * references. Nothing outside these grammars reaches the storage layout, which is what keeps
 * every path inside the storage root.
 */
const NAME_COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
const NAME_PATTERN = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** distribution refuses names longer than this (reference.NameTotalLengthMax). */
export const NAME_MAX_LENGTH = 255;

export type RepositoryName = string & { readonly __repositoryName: unique symbol };
export type Tag = string & { readonly __tag: unique symbol };

export function isRepositoryName(value: string): value is RepositoryName {
  return value.length <= NAME_MAX_LENGTH && NAME_PATTERN.test(value);
}

export function isTag(value: string): value is Tag {
  return TAG_PATTERN.test(value);
}

export interface Reference {
  name: RepositoryName;
  /** A tag or a digest. */
  reference: Tag | Digest;
}

/** "name:tag" or "name@digest" (no registry host: references are within this registry). */
export function parseReference(value: string): Reference | undefined {
  const at = value.indexOf("@");
  if (at >= 0) {
    const name = value.slice(0, at);
    const digest = value.slice(at + 1);
    return isRepositoryName(name) && isDigest(digest) ? { name, reference: digest } : undefined;
  }
  const colon = value.lastIndexOf(":");
  const name = colon >= 0 ? value.slice(0, colon) : "";
  const tag = value.slice(colon + 1);
  return colon >= 0 && isRepositoryName(name) && isTag(tag) ? { name, reference: tag } : undefined;
}
