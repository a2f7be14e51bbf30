import { digestAlgorithm, digestHex, type Digest } from "./digest.js";
import type { RepositoryName, Tag } from "./names.js";

/**
 * The one place that knows where things live in the store: distribution's
 * registry/storage/paths.go layout, so a store written by either registry serves from both.
 *
 *   /docker/registry/v2/blobs/<alg>/<hex[0:2]>/<hex>/data
 *   /docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
 *   /docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link
 *   /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
 *   /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
 *   /docker/registry/v2/repositories/<name>/_uploads/<id>/{data,startedat}
 *
 * Ours, beside it (distribution skips directories starting with "_" it does not know):
 *   /docker/registry/v2/repositories/<name>/_referrers/<alg>/<subject hex>/<alg>/<hex>/link
 *   /docker/registry/v2/_gc/...  (the garbage collector's, gc/paths.ts)
 *   /docker/registry/v2/_writeback/...  (a standby's journal, proxy/writeback-journal.ts)
 *   /docker/registry/v2/_pulls/<name>/_times/<instance>  (pull times, registry/pull-times.ts)
 *   /docker/registry/v2/_quarantine/...  (blobs the scrub found damaged, gc/scrub.ts)
 */
const ROOT = "/docker/registry/v2";

/** `<alg>/<hex>`: how links and marks name a digest in a path. */
export function digestDir(digest: Digest): string {
  return `${digestAlgorithm(digest)}/${digestHex(digest)}`;
}

export const layout = {
  root: ROOT,
  repositoriesRoot: `${ROOT}/repositories`,
  blobsRoot: `${ROOT}/blobs`,

  blobDir(digest: Digest): string {
    const hex = digestHex(digest);
    return `${ROOT}/blobs/${digestAlgorithm(digest)}/${hex.slice(0, 2)}/${hex}`;
  },
  blobData(digest: Digest): string {
    return `${layout.blobDir(digest)}/data`;
  },

  repository(name: RepositoryName): string {
    return `${ROOT}/repositories/${name}`;
  },
  layersDir(name: RepositoryName): string {
    return `${layout.repository(name)}/_layers`;
  },
  layerDir(name: RepositoryName, digest: Digest): string {
    return `${layout.layersDir(name)}/${digestDir(digest)}`;
  },
  layerLink(name: RepositoryName, digest: Digest): string {
    return `${layout.layerDir(name, digest)}/link`;
  },

  manifestsDir(name: RepositoryName): string {
    return `${layout.repository(name)}/_manifests`;
  },
  revisionsDir(name: RepositoryName): string {
    return `${layout.manifestsDir(name)}/revisions`;
  },
  revisionDir(name: RepositoryName, digest: Digest): string {
    return `${layout.revisionsDir(name)}/${digestDir(digest)}`;
  },
  revisionLink(name: RepositoryName, digest: Digest): string {
    return `${layout.revisionDir(name, digest)}/link`;
  },
  tagsDir(name: RepositoryName): string {
    return `${layout.manifestsDir(name)}/tags`;
  },
  tagDir(name: RepositoryName, tag: Tag): string {
    return `${layout.tagsDir(name)}/${tag}`;
  },
  tagCurrentLink(name: RepositoryName, tag: Tag): string {
    return `${layout.tagDir(name, tag)}/current/link`;
  },
  tagIndexLink(name: RepositoryName, tag: Tag, digest: Digest): string {
    return `${layout.tagDir(name, tag)}/index/${digestDir(digest)}/link`;
  },

  uploadsDir(name: RepositoryName): string {
    return `${layout.repository(name)}/_uploads`;
  },
  uploadDir(name: RepositoryName, id: string): string {
    return `${layout.uploadsDir(name)}/${id}`;
  },
  uploadData(name: RepositoryName, id: string): string {
    return `${layout.uploadDir(name, id)}/data`;
  },
  uploadStartedAt(name: RepositoryName, id: string): string {
    return `${layout.uploadDir(name, id)}/startedat`;
  },

  referrersDir(name: RepositoryName, subject: Digest): string {
    return `${layout.repository(name)}/_referrers/${digestDir(subject)}`;
  },
  referrerDir(name: RepositoryName, subject: Digest, referrer: Digest): string {
    return `${layout.referrersDir(name, subject)}/${digestDir(referrer)}`;
  },
  referrerLink(name: RepositoryName, subject: Digest, referrer: Digest): string {
    return `${layout.referrerDir(name, subject, referrer)}/link`;
  },
} as const;
