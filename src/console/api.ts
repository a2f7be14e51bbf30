import type { Registration } from "../cluster/announce.js";
import { unlessMissing } from "../storage/driver.js";
import { renderUpstream } from "../cluster/upstream-block.js";
import type { Metrics } from "../metrics/metrics.js";
import type { MirrorRegistry } from "../proxy/mirror.js";
import type { Writeback } from "../proxy/writeback.js";
import type { ScrubRecord } from "../gc/scrub.js";
import { planFor, type RepositoryPlan } from "../gc/retention.js";
import type { RetentionRule } from "../config/config.js";
import type { UpstreamProbe } from "../proxy/upstream-probe.js";
import type { PrefetchState } from "../proxy/prefetch.js";
import { listRepositories, type CatalogPage } from "../registry/catalog.js";
import type { Digest } from "../registry/digest.js";
import { parseManifest, type Platform } from "../registry/manifest-format.js";
import type { StoredManifest } from "../registry/manifests.js";
import type { RepositoryName, Tag } from "../registry/names.js";
import type { Registry, StoredRepository } from "../registry/registry.js";
import { layout } from "../registry/layout.js";
import { RegistryError } from "../registry/errors.js";
import { StorageAnalysis, type AnalysisState } from "./analysis.js";

export interface TagSummary {
  tag: string;
  digest: Digest;
  mediaType: string;
  /** Compressed size: the manifest, its config and layers (for an index, every child held). */
  size: number;
  platforms: Platform[];
  /** When the tag was last pointed here (the tag link's time), where the store knows it. */
  pushed: string | undefined;
}

export interface ConsoleSources {
  registry: Registry;
  metrics: Metrics;
  version: string;
  role: "primary" | "mirror";
  authMode: () => "none" | "htpasswd" | "token";
  /** With token auth: the realm the console's logins are forwarded to, and the service. */
  tokenRealm: () => { realm: string; service: string } | undefined;
  readOnly: () => boolean;
  /** storage.gc.delay, for the dry run. */
  gcDelayMs: number;
  /** storage.retention's rules, for each repository's policy and dry run. */
  retentionRules: RetentionRule[];
  /** storage.scrub, and what its last run found. */
  scrub: { enabled: boolean; intervalMs: number; rateMiBps: number; last: () => ScrubRecord | undefined };
  mirror?: { registry: MirrorRegistry; upstream: UpstreamProbe; prefetch: () => PrefetchState[] };
  cluster?: { registered: () => boolean; instances: () => Promise<Registration[]> };
}

type Samples = { get(): Promise<{ values: Array<{ labels: Partial<Record<string, string | number>>; value: number }> }> };

/** Problems of the last scrub the Storage view lists. */
const CONSOLE_SCRUB_ROWS = 100;

/** Rows of a standby's journal, and of what its replay decided against, the Mirror view lists. */
const CONSOLE_WRITEBACK_ROWS = 50;

/** A metric's samples, read once: the sum of those whose labels include `labels`. */
async function sums(metric: Samples): Promise<(labels?: Record<string, string>) => number> {
  const { values } = await metric.get();
  return (labels = {}) => values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((sum, v) => sum + v.value, 0);
}

/** Bytes of a stored manifest and everything it lists (config and layers; an index's own blobs are none). */
function contentSize(manifest: StoredManifest, info = parseManifest(manifest.content, manifest.mediaType)): number {
  return manifest.content.length + info.blobs.reduce((sum, b) => sum + b.size, 0);
}

/** What the web console shows beyond the registry API: tag details, mirror and cluster state, storage analysis. */
export class ConsoleApi {
  readonly analysis: StorageAnalysis;

  constructor(private readonly sources: ConsoleSources) {
    this.analysis = new StorageAnalysis(sources.registry.driver, sources.gcDelayMs);
  }

  info(): Record<string, unknown> {
    const { version, role, authMode } = this.sources;
    return { version, role, auth: authMode() };
  }

  /**
   * The token dance for the browser: a page cannot ask an auth server on another origin, so the
   * console sends the user's credentials here and they go to the configured realm (never to a
   * URL the client names).
   */
  async token(login: { username: string; password: string; scope: string }): Promise<{ token: string; expiresIn: number }> {
    const realm = this.sources.tokenRealm();
    if (!realm) throw new RegistryError("UNSUPPORTED", "this registry does not use token auth");
    const url = new URL(realm.realm);
    url.searchParams.set("service", realm.service);
    for (const scope of login.scope.split(" ").filter(Boolean)) url.searchParams.append("scope", scope);
    url.searchParams.set("account", login.username);
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { authorization: `Basic ${Buffer.from(`${login.username}:${login.password}`).toString("base64")}` },
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      throw new RegistryError("UNAVAILABLE", `the token realm ${url.origin} is unreachable: ${err instanceof Error ? err.message : String(err)}`);
    }
    const body = (await res.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof body.token === "string" ? body.token : typeof body.access_token === "string" ? body.access_token : undefined;
    if (res.status === 401 || res.status === 403) throw new RegistryError("UNAUTHORIZED", "the token realm refused these credentials");
    if (!res.ok || !token) throw new RegistryError("UNAVAILABLE", `the token realm answered ${res.status} without a token`);
    return { token, expiresIn: typeof body.expires_in === "number" ? body.expires_in : 60 };
  }

  /** Repositories this store holds (a mirror: what it caches), in pages larger than the catalog's 1,000. */
  repositories(n: number, last: string | undefined): Promise<CatalogPage> {
    return listRepositories(this.sources.registry.driver, n, last);
  }

  /** Local tags of a repository (a mirror: what it caches), a page at a time, with what each points at. */
  async tags(name: RepositoryName, n: number, last: string | undefined): Promise<{ tags: TagSummary[]; more: boolean } | undefined> {
    const repo = this.sources.registry.repository(name);
    const all = await repo.tags.list();
    // A repository with blobs or untagged manifests but no tag is there all the same.
    if (!all) return (await unlessMissing(() => this.sources.registry.driver.stat(layout.repository(name)))) ? { tags: [], more: false } : undefined;
    const after = last === undefined ? all : all.filter((t) => t > last);
    const page = after.slice(0, Math.min(n, 1000));
    const tags = (await Promise.all(page.map((tag) => this.tagSummary(repo, tag)))).filter((t): t is TagSummary => t !== undefined);
    return { tags, more: after.length > page.length };
  }

  private async tagSummary(repo: StoredRepository, tag: Tag): Promise<TagSummary | undefined> {
    const digest = await repo.tags.resolve(tag);
    const manifest = digest && (await repo.manifests.get(digest));
    if (!digest || !manifest) return undefined;
    const info = parseManifest(manifest.content, manifest.mediaType);
    let size = contentSize(manifest, info);
    for (const child of info.children) {
      const held = await repo.manifests.get(child.digest);
      size += held ? contentSize(held) : 0;
    }
    const link = await unlessMissing(() => this.sources.registry.driver.stat(layout.tagCurrentLink(repo.name, tag)));
    return {
      tag,
      digest,
      mediaType: manifest.mediaType,
      size,
      platforms: info.children.flatMap((c) => (c.platform ? [c.platform] : [])),
      pushed: link?.modTime.toISOString(),
    };
  }

  async overview(): Promise<Record<string, unknown>> {
    const { registry, metrics, mirror, cluster } = this.sources;
    const [requests, bytes, inFlight, errors] = await Promise.all([
      sums(metrics.proxyRequests), sums(metrics.proxyBytes), sums(metrics.proxyFetchesInFlight), sums(metrics.proxyUpstreamErrors),
    ]);
    return {
      ...this.info(),
      storage: { driver: registry.driver.name, readOnly: this.sources.readOnly() },
      mirror: mirror && {
        upstream: mirror.registry.upstream.url,
        health: await mirror.upstream.check().then(({ reachable, message }) => ({ ok: reachable, message })),
        blobs: {
          hits: requests({ kind: "blob", result: "hit" }),
          misses: requests({ kind: "blob", result: "miss" }),
          coalesced: requests({ kind: "blob", result: "coalesced" }),
        },
        manifests: {
          hits: requests({ kind: "manifest", result: "hit" }),
          fetched: requests({ kind: "manifest" }) - requests({ kind: "manifest", result: "hit" }),
        },
        bytes: { cache: bytes({ source: "cache" }), upstream: bytes({ source: "upstream" }), sibling: bytes({ source: "sibling" }) },
        siblings: mirror.registry.siblings && {
          self: mirror.registry.siblings.self,
          mirrors: mirror.registry.siblings.addresses(),
          linkRate: mirror.registry.siblings.linkRate.estimate(),
          relays: mirror.registry.relays?.recent() ?? [],
        },
        fetchesInFlight: inFlight(),
        upstreamErrors: errors(),
        prefetch: mirror.prefetch(),
        writeback: mirror.registry.writeback && (await this.writeback(mirror.registry.writeback)),
      },
      cluster: cluster && (await this.clusterState(cluster)),
    };
  }

  /** A standby's journal: what waits for the upstream, and the latest writes the replay decided against. */
  private async writeback(writeback: Writeback): Promise<Record<string, unknown>> {
    const decided = await writeback.journal.conflicts();
    return { ...writeback.state(), waiting: writeback.waiting(CONSOLE_WRITEBACK_ROWS), decided: decided.slice(-CONSOLE_WRITEBACK_ROWS).reverse() };
  }

  private async clusterState(cluster: NonNullable<ConsoleSources["cluster"]>): Promise<Record<string, unknown>> {
    try {
      const instances = await cluster.instances();
      return { registered: cluster.registered(), instances, upstreamFile: renderUpstream("registry", instances) ?? "" };
    } catch (err) {
      return { registered: cluster.registered(), error: err instanceof Error ? err.message : String(err) };
    }
  }

  /** The rules that govern a repository, and what a run now would keep (and why) and remove: a dry run. */
  async retention(name: RepositoryName): Promise<{ rules: Array<RetentionRule & { index: number }>; plan: RepositoryPlan }> {
    const rules = this.sources.retentionRules;
    const plan = await planFor(this.sources.registry, rules, name);
    return { rules: plan.rules.map((index) => ({ ...rules[index]!, index })), plan };
  }

  /** The analysis, and storage.scrub's last run (its first problems). */
  storage(): AnalysisState & { scrub: Record<string, unknown> } {
    const { enabled, intervalMs, rateMiBps, last } = this.sources.scrub;
    const record = last();
    const report = record?.report && { ...record.report, problems: record.report.problems.slice(0, CONSOLE_SCRUB_ROWS), problemCount: record.report.problems.length };
    return { ...this.analysis.state, scrub: { enabled, intervalMs, rateMiBps, last: record && { at: record.at, error: record.error, report } } };
  }
}
