import { createServer, type Server } from "node:http";
import type { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { pino } from "pino";
import { MirrorRegistry } from "../../src/proxy/mirror.js";
import { Registry } from "../../src/registry/registry.js";
import type { Digest } from "../../src/registry/digest.js";
import type { RepositoryName } from "../../src/registry/names.js";
import type { StorageDriver } from "../../src/storage/driver.js";
import { InMemoryDriver } from "../../src/storage/inmemory.js";
import { layout } from "../../src/registry/layout.js";
import { OCI_MANIFEST, randomImage, sha256 } from "../helpers/oci.js";
import { until } from "../helpers/until.js";

const NAME = "lain/app" as RepositoryName;

/** The peer: serves one blob and one manifest, and counts the GETs of each path. */
async function peer(blob: Buffer, manifest: { digest: string; content: Buffer }): Promise<{ url: string; gets: Map<string, number>; server: Server }> {
  const gets = new Map<string, number>();
  const server = createServer((req, res) => {
    if (req.method === "GET") gets.set(req.url ?? "", (gets.get(req.url ?? "") ?? 0) + 1);
    if (req.url === `/v2/${NAME}/blobs/${sha256(blob)}`) return void res.writeHead(200, { "content-length": blob.length }).end(req.method === "HEAD" ? undefined : blob);
    if (req.url === `/v2/${NAME}/manifests/${manifest.digest}`) {
      return void res.writeHead(200, { "content-type": OCI_MANIFEST, "docker-content-digest": manifest.digest, "content-length": manifest.content.length }).end(req.method === "HEAD" ? undefined : manifest.content);
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, gets, server };
}

/** A lookup held back: `reached` once a request made it, `release` lets it answer. */
interface Hold {
  reached: Promise<void>;
  release: () => void;
}

/**
 * A store whose next lookup of a path (armed by `hold`) answers what the store said then, but
 * only once released: a request that looked before a fill ended and goes on after it.
 */
function holdingDriver(): { driver: StorageDriver; hold: (path: string) => Hold } {
  const inner = new InMemoryDriver();
  const driver = Object.create(inner) as StorageDriver;
  let armed: { path: string; reached: () => void; released: Promise<void> } | undefined;
  const delayed = async <T,>(path: string, look: () => Promise<T>): Promise<T> => {
    const held = armed?.path === path ? armed : undefined;
    if (held) armed = undefined;
    const said = await look().then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    held?.reached();
    await held?.released;
    if ("error" in said) throw said.error;
    return said.value;
  };
  driver.stat = (path) => delayed(path, () => inner.stat(path));
  driver.getContent = (path) => delayed(path, () => inner.getContent(path));
  return {
    driver,
    hold: (path) => {
      let reached!: () => void;
      let release!: () => void;
      const hold = { reached: new Promise<void>((resolve) => (reached = resolve)), release: () => release() };
      armed = { path, reached, released: new Promise((resolve) => (release = resolve)) };
      return hold;
    },
  };
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe("a mirror's request that looked in the store just before a fill of the same content ended", () => {
  const closing: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
  });

  async function setup() {
    const image = randomImage({ layers: 1 });
    const blob = image.layers[0]!.content;
    const upstream = await peer(blob, image.manifest);
    closing.push(() => new Promise((resolve) => upstream.server.close(resolve)));
    const loaded = parseConfig(`version: 0.1\nstorage: {inmemory: {}}\nproxy: {remoteurl: ${upstream.url}}`, {});
    if (!loaded.ok || !loaded.config.proxy) throw new Error(JSON.stringify(loaded));
    const { driver, hold } = holdingDriver();
    const registry = new MirrorRegistry(new Registry(driver), loaded.config.proxy, pino({ level: "silent" }));
    closing.unshift(() => registry.close());
    return { registry, repo: registry.repository(NAME), upstream, hold, blob, manifest: image.manifest };
  }

  it("is served the stored blob: it crosses from the peer once", async () => {
    const { registry, repo, upstream, hold, blob } = await setup();
    const digest = sha256(blob) as Digest;
    // Its last look, whether another repository's copy is in the store, says no.
    const held = hold(layout.blobData(digest));
    const late = repo.fetchBlob(digest);
    await held.reached;

    const first = await repo.fetchBlob(digest);
    expect(await drain(await first!.open(0, blob.length))).toEqual(blob);
    await until(() => !registry.fills.has(`${NAME}@${digest}`), "the first fill to be over and its key released");
    held.release();

    const second = await late;
    expect(second?.size).toBe(blob.length);
    expect(await drain(await second!.open(0, blob.length))).toEqual(blob);
    expect(upstream.gets.get(`/v2/${NAME}/blobs/${digest}`)).toBe(1);
  });

  it("is given the stored manifest: it crosses from the peer once", async () => {
    const { registry, repo, upstream, hold, manifest } = await setup();
    const digest = manifest.digest as Digest;
    const held = hold(layout.revisionLink(NAME, digest));
    const late = repo.manifest(digest);
    await held.reached;

    expect((await repo.manifest(digest))?.manifest.content).toEqual(manifest.content);
    await until(() => !registry.manifestFetches.has(`${NAME}@${digest}`), "the first fetch's key to be released");
    held.release();

    expect((await late)?.manifest.content).toEqual(manifest.content);
    expect(upstream.gets.get(`/v2/${NAME}/manifests/${digest}`)).toBe(1);
  });
});
