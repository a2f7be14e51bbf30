import { createHash, randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { call, resolveLocation } from "./http.js";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";
export const OCI_EMPTY = "application/vnd.oci.empty.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
export const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip";

export function sha256(content: Buffer | string): string {
  return `sha256:${createHash("sha256").update(content).digest("hex")}`;
}

export interface Blob {
  mediaType: string;
  digest: string;
  content: Buffer;
}

export interface Manifest {
  mediaType: string;
  digest: string;
  content: Buffer;
  json: Record<string, unknown>;
}

export interface Image {
  manifest: Manifest;
  config: Blob;
  layers: Blob[];
}

function blob(mediaType: string, content: Buffer): Blob {
  return { mediaType, digest: sha256(content), content };
}

export function descriptor(item: Blob | Manifest): { mediaType: string; digest: string; size: number } {
  return { mediaType: item.mediaType, digest: item.digest, size: item.content.length };
}

export function manifestOf(json: Record<string, unknown>): Manifest {
  const content = Buffer.from(JSON.stringify(json));
  return { mediaType: String(json.mediaType), digest: sha256(content), content, json };
}

/** A one-file tar archive (ustar), enough for a layer any client unpacks. */
function tarOf(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, "utf8");
  header.write("0000644\0", 100);
  header.write("0000000\0", 108);
  header.write("0000000\0", 116);
  header.write(`${data.length.toString(8).padStart(11, "0")}\0`, 124);
  header.write(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, "0")}\0`, 136);
  header.write("        ", 148);
  header.write("0", 156);
  header.write("ustar\0", 257);
  header.write("00", 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  const padding = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, padding, Buffer.alloc(1024)]);
}

export interface ImageOptions {
  layers?: number;
  layerSize?: number;
  architecture?: string;
  os?: string;
  format?: "oci" | "docker";
}

/** A runnable-looking image of random layers (real tar.gz) with its config and manifest. */
export function randomImage(options: ImageOptions = {}): Image {
  const docker = options.format === "docker";
  const tars = Array.from({ length: options.layers ?? 2 }, (_, i) => tarOf(`file${i}.bin`, randomBytes(options.layerSize ?? 4096)));
  const layers = tars.map((tar) => blob(docker ? DOCKER_LAYER : OCI_LAYER, gzipSync(tar)));
  const config = blob(
    docker ? DOCKER_CONFIG : OCI_CONFIG,
    Buffer.from(
      JSON.stringify({
        architecture: options.architecture ?? "amd64",
        os: options.os ?? "linux",
        rootfs: { type: "layers", diff_ids: tars.map((t) => sha256(t)) },
        config: { Cmd: ["/bin/true"] },
      }),
    ),
  );
  const manifest = manifestOf({
    schemaVersion: 2,
    mediaType: docker ? DOCKER_MANIFEST : OCI_MANIFEST,
    config: descriptor(config),
    layers: layers.map(descriptor),
  });
  return { manifest, config, layers };
}

export function indexOf(images: Image[], format: "oci" | "docker" = "oci"): Manifest {
  return manifestOf({
    schemaVersion: 2,
    mediaType: format === "docker" ? DOCKER_LIST : OCI_INDEX,
    manifests: images.map((image) => {
      const config = JSON.parse(image.config.content.toString("utf8")) as { architecture: string; os: string };
      return { ...descriptor(image.manifest), platform: { architecture: config.architecture, os: config.os } };
    }),
  });
}

export interface Artifact {
  manifest: Manifest;
  config: Blob;
  layers: Blob[];
}

/** An OCI 1.1 artifact (a signature, an SBOM) whose subject is `subject`. */
export function artifactFor(subject: Manifest, artifactType: string, payload = randomBytes(256)): Artifact {
  const config = blob(OCI_EMPTY, Buffer.from("{}"));
  const layer = blob("application/octet-stream", payload);
  const manifest = manifestOf({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType,
    config: descriptor(config),
    layers: [descriptor(layer)],
    subject: descriptor(subject),
    annotations: { "org.example.kind": artifactType },
  });
  return { manifest, config, layers: [layer] };
}

/** Uploads a blob as every registry accepts it: POST a session, then PUT the whole body with ?digest=. */
/** `auth`: headers for a registry that wants credentials (an Authorization header). */
export async function pushBlob(base: string, repo: string, item: Blob, auth: Record<string, string> = {}): Promise<void> {
  const location = new URL(await startUpload(base, repo, auth));
  location.searchParams.set("digest", item.digest);
  const reply = await call("PUT", location.toString(), {
    headers: { "content-type": "application/octet-stream", ...auth },
    body: item.content,
  });
  if (reply.status !== 201) throw new Error(`push blob ${item.digest}: ${reply.status} ${reply.text}`);
}

export async function pushManifest(base: string, repo: string, reference: string, manifest: Manifest, auth: Record<string, string> = {}): Promise<void> {
  const reply = await call("PUT", `${base}/v2/${repo}/manifests/${reference}`, {
    headers: { "content-type": manifest.mediaType, ...auth },
    body: manifest.content,
  });
  if (reply.status !== 201) throw new Error(`push manifest ${reference}: ${reply.status} ${reply.text}`);
}

export async function pushImage(base: string, repo: string, reference: string, image: Image | Artifact, auth: Record<string, string> = {}): Promise<void> {
  for (const item of [image.config, ...image.layers]) await pushBlob(base, repo, item, auth);
  await pushManifest(base, repo, reference, image.manifest, auth);
}

/** Starts a session and returns its upload URL. */
export async function startUpload(base: string, repo: string, auth: Record<string, string> = {}): Promise<string> {
  const reply = await call("POST", `${base}/v2/${repo}/blobs/uploads/`, { headers: auth });
  if (reply.status !== 202) throw new Error(`start upload: ${reply.status} ${reply.text}`);
  return resolveLocation(base, reply.headers.location);
}

/** Writes an OCI image layout that skopeo can copy from (oci:<dir>:<tag>). */
export async function writeOciLayout(dir: string, entries: Array<{ tag: string; manifest: Manifest }>, blobs: Array<Blob | Manifest>): Promise<void> {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  for (const item of blobs) await writeFile(join(dir, "blobs", "sha256", item.digest.slice("sha256:".length)), item.content);
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: entries.map(({ tag, manifest }) => ({
        ...descriptor(manifest),
        annotations: { "org.opencontainers.image.ref.name": tag },
      })),
    }),
  );
}

/** Whether a registry serves every byte of an image pushed as repo:tag. */
export async function pullsWhole(base: string, repo: string, tag: string, image: Image, auth: Record<string, string> = {}): Promise<boolean> {
  const manifest = await call("GET", `${base}/v2/${repo}/manifests/${tag}`, { headers: { ...auth, accept: image.manifest.mediaType } });
  if (!manifest.body.equals(image.manifest.content)) return false;
  for (const blob of [image.config, ...image.layers]) {
    if (!(await call("GET", `${base}/v2/${repo}/blobs/${blob.digest}`, { headers: auth })).body.equals(blob.content)) return false;
  }
  return true;
}
