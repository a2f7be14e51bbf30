export const MediaType = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.ociIndex,
];

export function isIndexType(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

/** Layers a client fetches from their `urls`, never from the registry (so never checked here). */
export function isForeignLayerType(mediaType: string): boolean {
  return (
    mediaType === MediaType.dockerForeignLayer ||
    mediaType.startsWith("application/vnd.oci.image.layer.nondistributable.v1.tar")
  );
}

/** "application/json; charset=utf-8" → "application/json" */
export function baseMediaType(value: string | undefined): string | undefined {
  const base = value?.split(";")[0]?.trim().toLowerCase();
  return base ? base : undefined;
}
