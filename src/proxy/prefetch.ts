import type { Logger } from "pino";
import type { Digest } from "../registry/digest.js";
import { parseManifest, type Descriptor } from "../registry/manifest-format.js";
import type { StoredManifest } from "../registry/manifests.js";
import type { Reference } from "../registry/names.js";
import { MirroredRepository, type MirrorRegistry } from "./mirror.js";

export interface PrefetchReport {
  digest: Digest;
  manifests: number;
  blobs: number;
  /** Bytes fetched from the peer this time (0 when everything was cached already). */
  fetchedBytes: number;
  /** Set when the peer could not be asked and the cached tag was used. */
  stale?: string;
}

/** Makes an image present in the mirror's store: the manifest, every platform of an index, every blob. */
export async function prefetch(registry: MirrorRegistry, ref: Reference): Promise<PrefetchReport> {
  const repo = registry.repository(ref.name);
  if (!(repo instanceof MirroredRepository)) throw new Error(`${ref.name} is not mirrored (see proxy.namespaces)`);
  const top = await repo.manifest(ref.reference);
  if (!top) throw new Error(`${ref.name}:${ref.reference} is unknown to upstream ${registry.upstream.url}`);
  const report: PrefetchReport = { digest: top.manifest.digest, manifests: 0, blobs: 0, fetchedBytes: 0 };
  if (top.stale) report.stale = top.stale;
  await walk(repo, top.manifest, report);
  return report;
}

async function walk(repo: MirroredRepository, manifest: StoredManifest, report: PrefetchReport): Promise<void> {
  report.manifests++;
  const info = parseManifest(manifest.content, manifest.mediaType);
  await Promise.all(info.blobs.map((blob) => ensureBlob(repo, blob, report)));
  for (const child of info.children) {
    const found = await repo.manifest(child.digest);
    if (!found) throw new Error(`${repo.name}@${child.digest}, named by ${manifest.digest}, is unknown upstream`);
    await walk(repo, found.manifest, report);
  }
}

async function ensureBlob(repo: MirroredRepository, blob: Descriptor, report: PrefetchReport): Promise<void> {
  report.blobs++;
  if (await repo.blobs.stat(blob.digest)) return;
  const cached = await repo.cacheBlob(blob.digest);
  if (!cached) throw new Error(`blob ${blob.digest} of ${repo.name} could not be cached (missing upstream, or the store refused it)`);
  report.fetchedBytes += cached.size;
}

/**
 * proxy.prefetch: the references the mirror keeps warm, checked at start and then every
 * interval, so it holds them when its peer goes down (the registry's own image first).
 */
/** Where one proxy.prefetch reference stands, for the console. */
export interface PrefetchState {
  reference: string;
  /** When it was last checked; absent before the first round reached it. */
  checked?: string;
  digest?: string;
  /** Why the last check failed. */
  error?: string;
}

export class PrefetchLoop {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly states = new Map<string, PrefetchState>();

  constructor(
    private readonly registry: MirrorRegistry,
    private readonly references: Array<{ text: string; ref: Reference }>,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    void this.round();
  }

  get state(): PrefetchState[] {
    return this.references.map(({ text }) => this.states.get(text) ?? { reference: text });
  }

  private async round(): Promise<void> {
    for (const { text, ref } of this.references) {
      if (this.stopped) return;
      try {
        const report = await prefetch(this.registry, ref);
        this.states.set(text, { reference: text, checked: new Date().toISOString(), digest: report.digest });
        if (report.fetchedBytes > 0 || report.stale) this.log.info({ reference: text, ...report }, "mirror: prefetched");
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        this.states.set(text, { reference: text, checked: new Date().toISOString(), error });
        this.log.warn({ reference: text, err: error }, "mirror: prefetch failed; retrying next round");
      }
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.round(), this.intervalMs);
  }

  /** A round in progress ends when the registry closes its connection to the peer. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
