import type { Logger } from "pino";
import type { Digest } from "../registry/digest.js";
import { parseManifest, type Descriptor } from "../registry/manifest-format.js";
import type { StoredManifest } from "../registry/manifests.js";
import type { Reference } from "../registry/names.js";
import type { MirroredRepository, MirrorRegistry } from "./mirror.js";

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
  const repo = registry.mirrored(ref.name);
  if (!repo) throw new Error(`${ref.name} is not mirrored (see proxy.namespaces)`);
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
  if (await repo.holds(blob.digest)) return;
  const cached = await repo.cacheBlob(blob.digest);
  if (!cached) throw new Error(`blob ${blob.digest} of ${repo.name} could not be cached (missing upstream, or the store refused it)`);
  report.fetchedBytes += cached.size;
}

/** Where one proxy.prefetch reference stands, for the console and /health. */
export interface PrefetchState {
  reference: string;
  /** When it was last checked; absent before the first round reached it. */
  checked?: string;
  digest?: string;
  /** Why the last check failed. */
  error?: string;
}

/** A round that failed is tried again this soon, then twice as late each time, up to the interval. */
const FIRST_RETRY_MS = 2000;

/**
 * proxy.prefetch: the references the mirror keeps warm, checked at start and then every
 * interval, so it holds them when its peer goes down (the registry's own image first). A round
 * that could not cache one (the peer not up yet) is retried with backoff, not an interval later.
 */
export class PrefetchLoop {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private retryMs = FIRST_RETRY_MS;
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

  /** For /health: every reference's state; an `error` (degraded, still 200) while one is not cached. */
  health(): { references: PrefetchState[]; error?: string } {
    const references = this.state;
    const failing = references.filter((r) => r.error !== undefined);
    return failing.length === 0 ? { references } : { references, error: `${failing.length} of ${references.length} prefetch reference(s) not cached; retrying` };
  }

  private async round(): Promise<void> {
    let failed = false;
    for (const { text, ref } of this.references) {
      if (this.stopped) return;
      try {
        const report = await prefetch(this.registry, ref);
        this.states.set(text, { reference: text, checked: new Date().toISOString(), digest: report.digest });
        if (report.fetchedBytes > 0 || report.stale) this.log.info({ reference: text, ...report }, "mirror: prefetched");
      } catch (err) {
        failed = true;
        const error = err instanceof Error ? err.message : String(err);
        this.states.set(text, { reference: text, checked: new Date().toISOString(), error });
        this.log.warn({ reference: text, err: error, retryInMs: Math.min(this.retryMs, this.intervalMs) }, "mirror: prefetch failed; retrying");
      }
    }
    if (this.stopped) return;
    const delay = failed ? Math.min(this.retryMs, this.intervalMs) : this.intervalMs;
    this.retryMs = failed ? Math.min(this.retryMs * 2, this.intervalMs) : FIRST_RETRY_MS;
    this.timer = setTimeout(() => void this.round(), delay);
  }

  /** A round in progress ends when the registry closes its connection to the peer. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
