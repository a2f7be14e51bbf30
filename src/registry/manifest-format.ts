import { parseDigest, type Digest } from "./digest.js";
import { RegistryError } from "./errors.js";
import { baseMediaType, isForeignLayerType, MediaType } from "./media-types.js";

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: Platform;
}

/** What the registry needs to know of a manifest: its type and what it points to. */
export interface ManifestInfo {
  mediaType: string;
  /** Blobs the manifest needs in the repository: config and layers (foreign layers excluded). */
  blobs: Descriptor[];
  /** Manifests an index points to. */
  children: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

type Json = Record<string, unknown>;

function invalid(message: string): RegistryError {
  return new RegistryError("MANIFEST_INVALID", message);
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === "string")) {
    throw invalid(`${where} must be a map of strings`);
  }
  return value as Record<string, string>;
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size, urls, artifactType, platform } = value;
  if (typeof mediaType !== "string" || mediaType === "") throw invalid(`${where}.mediaType is required`);
  if (typeof digest !== "string") throw invalid(`${where}.digest is required`);
  const parsed = parseDigest(digest);
  if (!parsed.ok) throw new RegistryError("DIGEST_INVALID", `${where}.digest: ${parsed.reason}`);
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${where}.size must be a non-negative integer`);
  }
  if (urls !== undefined && (!Array.isArray(urls) || !urls.every((u) => typeof u === "string"))) {
    throw invalid(`${where}.urls must be a list of strings`);
  }
  if (artifactType !== undefined && typeof artifactType !== "string") throw invalid(`${where}.artifactType must be a string`);
  const descriptor: Descriptor = { mediaType, digest: parsed.digest, size };
  if (urls) descriptor.urls = urls as string[];
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  const annotations = stringMap(value.annotations, `${where}.annotations`);
  if (annotations) descriptor.annotations = annotations;
  if (platform !== undefined) {
    if (!isObject(platform) || typeof platform.architecture !== "string" || typeof platform.os !== "string") {
      throw invalid(`${where}.platform needs architecture and os`);
    }
    descriptor.platform = {
      architecture: platform.architecture,
      os: platform.os,
      ...(typeof platform.variant === "string" ? { variant: platform.variant } : {}),
    };
  }
  return descriptor;
}

function parseDescriptorList(value: unknown, where: string): Descriptor[] {
  if (!Array.isArray(value)) throw invalid(`${where} must be a list`);
  return value.map((item, i) => parseDescriptor(item, `${where}[${i}]`));
}

function parseJson(content: Buffer): Json {
  let json: unknown;
  try {
    json = JSON.parse(content.toString("utf8"));
  } catch (err) {
    throw invalid(`manifest is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(json)) throw invalid("manifest must be a JSON object");
  return json;
}

/**
 * The media type of a stored manifest, as distribution decides it: the mediaType field, else
 * schema 1 by its version, else an OCI index when it lists manifests, else an OCI manifest.
 */
export function storedMediaType(content: Buffer): string {
  try {
    const json = JSON.parse(content.toString("utf8")) as Json;
    if (typeof json.mediaType === "string" && json.mediaType !== "") return json.mediaType;
    if (json.schemaVersion === 1) return json.signatures ? MediaType.dockerSchema1Signed : MediaType.dockerSchema1;
    return Array.isArray(json.manifests) ? MediaType.ociIndex : MediaType.ociManifest;
  } catch {
    return MediaType.ociManifest;
  }
}

/**
 * Parses and checks a manifest a client pushes. The type comes from the body's mediaType or,
 * when absent, the Content-Type; when both are present they must agree (OCI distribution-spec,
 * "Pushing Manifests").
 */
export function parseManifest(content: Buffer, contentType: string | undefined): ManifestInfo {
  const json = parseJson(content);
  const declared = json.mediaType;
  if (declared !== undefined && typeof declared !== "string") throw invalid("mediaType must be a string");
  const header = baseMediaType(contentType);
  if (declared && header && header !== declared && header !== "application/json") {
    throw invalid(`mediaType ${declared} in the manifest does not match Content-Type ${header}`);
  }
  const guessed = Array.isArray(json.manifests) ? MediaType.ociIndex : MediaType.ociManifest;
  const knownHeader = header && header !== "application/json" ? header : undefined;
  const mediaType = declared || knownHeader || guessed;

  switch (mediaType) {
    case MediaType.dockerSchema1:
    case MediaType.dockerSchema1Signed:
      throw invalid("Docker schema 1 manifests are deprecated and not accepted; push schema 2 or OCI");
    case MediaType.dockerManifest:
    case MediaType.ociManifest:
      return parseImageManifest(json, mediaType);
    case MediaType.dockerManifestList:
    case MediaType.ociIndex:
      return parseIndex(json, mediaType);
    default:
      throw invalid(`unsupported manifest media type ${mediaType}`);
  }
}

function checkSchemaVersion(json: Json): void {
  if (json.schemaVersion !== 2) throw invalid("schemaVersion must be 2");
}

function requireDeclaredType(json: Json, mediaType: string): void {
  // distribution's Docker schema 2 and manifest list types insist on the field.
  if (json.mediaType !== mediaType) throw invalid(`mediaType must be ${mediaType}`);
}

function common(json: Json, mediaType: string): Pick<ManifestInfo, "mediaType" | "subject" | "artifactType" | "annotations"> {
  const info: Pick<ManifestInfo, "mediaType" | "subject" | "artifactType" | "annotations"> = { mediaType };
  if (json.subject !== undefined) info.subject = parseDescriptor(json.subject, "subject");
  if (json.artifactType !== undefined) {
    if (typeof json.artifactType !== "string") throw invalid("artifactType must be a string");
    info.artifactType = json.artifactType;
  }
  const annotations = stringMap(json.annotations, "annotations");
  if (annotations) info.annotations = annotations;
  return info;
}

function parseImageManifest(json: Json, mediaType: string): ManifestInfo {
  checkSchemaVersion(json);
  if (mediaType === MediaType.dockerManifest) requireDeclaredType(json, mediaType);
  if (json.manifests !== undefined) throw invalid("an image manifest must not list manifests");
  const config = parseDescriptor(json.config, "config");
  const layers = json.layers === undefined && mediaType === MediaType.ociManifest ? [] : parseDescriptorList(json.layers, "layers");
  for (const [i, layer] of layers.entries()) {
    if (isForeignLayerType(layer.mediaType) && !layer.urls?.length) {
      throw invalid(`layers[${i}] is a non-distributable layer without urls`);
    }
  }
  const blobs = [config, ...layers.filter((layer) => !(isForeignLayerType(layer.mediaType) && layer.urls?.length))];
  return { ...common(json, mediaType), blobs, children: [] };
}

function parseIndex(json: Json, mediaType: string): ManifestInfo {
  checkSchemaVersion(json);
  if (mediaType === MediaType.dockerManifestList) requireDeclaredType(json, mediaType);
  if (json.config !== undefined || json.layers !== undefined) throw invalid("an index must not have config or layers");
  const children = parseDescriptorList(json.manifests, "manifests");
  return { ...common(json, mediaType), blobs: [], children };
}

