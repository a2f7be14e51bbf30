import { tmpdir } from "node:os";
import type { Readable } from "node:stream";
import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import type { ProxyConfig } from "../config/config.js";
import { Metrics } from "../metrics/metrics.js";
import type { BlobDescriptor } from "../registry/blobs.js";
import { compareRepositoryNames, type CatalogPage } from "../registry/catalog.js";
import { isDigest, type Digest } from "../registry/digest.js";
import { RegistryError, warning } from "../registry/errors.js";
import { parseManifest, type Descriptor } from "../registry/manifest-format.js";
import type { PutResult, StoredManifest } from "../registry/manifests.js";
import { isRepositoryName, isTag, type RepositoryName, type Tag } from "../registry/names.js";
import { ofArtifactType, type Registry, type StoredRepository } from "../registry/registry.js";
import type { BlobContent, ManifestLookup, Namespace, Repository } from "../registry/repository.js";
import type { IncomingBody, UploadStatus } from "../registry/uploads.js";
import { BlobFill, type FillStore } from "./blob-fill.js";
import { Coalescer } from "./coalesce.js";
import { DeferredFills } from "./deferred-fill.js";
import { RelayBoard, type RelayDecision } from "./relay.js";
import { MirroredNamespaces } from "./namespaces.js";
import type { Siblings } from "./siblings.js";
import { Spool } from "./spool.js";
import { uploadSpoolFile } from "./upload-spool.js";
import { UpstreamError, UpstreamRegistry, type Found, type UpstreamManifest } from "./upstream.js";
import { Writeback } from "./writeback.js";
import { WritebackJournal } from "./writeback-journal.js";
import { reusedFor } from "../reused-answer.js";

/** A sibling mirror's request: its address, as it names itself, and its receive rate when it knows one (proxy/relay.ts). */
export interface SiblingAsking {
  from: string | undefined;
  rate: number | undefined;
}

/** Where a fetch got its bytes: the peer (proxy.remoteurl), or the sibling mirror that owns the blob. */
export type FetchSource = "upstream" | "sibling";

/** What asking for a blob the store lacked gives. */
type Fetched =
  /** `source`: where the fill's bytes come from, which a range the fill does not hold yet is passed through to. */
  | { kind: "filling"; fill: BlobFill; source: UpstreamRegistry }
  /** A fill that ended after the caller looked has stored it. */
  | { kind: "stored"; blob: BlobDescriptor }
  | { kind: "missing" };

/** How long an answer to whether the peer is up serves the writes that ask. */
const UPSTREAM_ANSWERS_MS = 1000;

/** How long the answer to a range passed on stays unread before it is let go. */
const UNOPENED_RANGE_MS = 30_000;

/** A tag's key in the caches of what the peer said: `name:tag`. */
function tagKey(name: string, tag: string): string {
  return `${name}:${tag}`;
}

/** Turns a failure of the peer into the error a client sees: it names the peer. */
function upstreamFailure(err: unknown): unknown {
  if (!(err instanceof UpstreamError)) return err;
  return new RegistryError(err.status === 401 || err.status === 403 ? "DENIED" : "UNAVAILABLE", err.message);
}

async function orUpstreamFailure<T>(task: Promise<T>): Promise<T> {
  try {
    return await task;
  } catch (err) {
    throw upstreamFailure(err);
  }
}

/**
 * A registry that pulls through from a peer, composed over a local one: what the local store
 * lacks in a mirrored repository it fetches, serves while caching, and serves locally ever
 * after. Repositories outside proxy.namespaces are the local store's alone.
 */
export class MirrorRegistry implements Namespace {
  readonly upstream: UpstreamRegistry;
  readonly fills = new Coalescer<Fetched>();
  /** Fills in progress; closing waits for them to clean up what they wrote. */
  readonly filling = new Set<Promise<void>>();
  readonly manifestFetches = new Coalescer<StoredManifest | undefined>();
  /** When each tag was last confirmed with the peer (in memory: a restart revalidates once). */
  readonly validatedTags = new LRUCache<string, number>({ max: 10_000 });
  readonly spoolDir: string;
  /** proxy.namespaces: the repositories pulled through. */
  readonly namespaces: MirroredNamespaces;

  /** proxy.siblings: how many siblings' streams of one blob this mirror serves at once, and where the rest go. */
  readonly relays: RelayBoard | undefined;
  /** proxy.fillonrange: the fills that ranges started, each begun once the blob's ranges pause. */
  readonly rangeFills: DeferredFills;
  /** proxy.pushes: writeback: the pushes this standby took, journaled for the peer. */
  readonly writeback: Writeback | undefined;
  /** Whether the peer answers its API check, asked at most once a second (writes and the write-back ask it). */
  readonly upstreamAnswers: () => Promise<boolean>;

  constructor(
    readonly local: Registry,
    readonly config: ProxyConfig,
    readonly log: Logger,
    readonly metrics = new Metrics(),
    /** proxy.siblings: the fleet's other mirrors, each owning a share of the blobs. */
    readonly siblings?: Siblings,
  ) {
    this.relays = siblings && new RelayBoard(config.siblings.fanout, () => siblings.linkRate.estimate());
    this.rangeFills = new DeferredFills((delta) => metrics.proxyFetchesInFlight.inc(delta));
    this.upstream = new UpstreamRegistry(config, () => metrics.proxyUpstreamErrors.inc());
    this.spoolDir = config.spoolDir ?? tmpdir();
    this.upstreamAnswers = reusedFor(UPSTREAM_ANSWERS_MS, () => this.upstream.check().then(() => true, () => false));
    this.namespaces = new MirroredNamespaces(config, this.upstreamAnswers);
    this.writeback =
      config.pushes === "writeback"
        ? new Writeback(new WritebackJournal(local.driver), local, this.upstream, log, (result) => metrics.proxyWritebackReplayed.inc({ result }), (name, tag, followUpstream) => {
            // A tag left to the peer is asked again at the next pull; one written there is the peer's value now.
            if (followUpstream) this.validatedTags.delete(tagKey(name, tag));
            else this.validatedTags.set(tagKey(name, tag), Date.now());
          })
        : undefined;
  }

  repository(name: RepositoryName): Repository {
    return this.mirrored(name) ?? this.local.repository(name);
  }

  /**
   * What a sibling mirror's request sees: the same repositories, answered from here and the
   * peer, never by asking another sibling (one hop).
   */
  forSibling(asking: SiblingAsking): Namespace {
    return {
      repository: (name) => this.mirrored(name, asking) ?? this.local.repository(name),
      catalog: (limit, last) => this.catalog(limit, last),
      // A view: the mirror it shows is closed through the clients' namespace.
      close: () => Promise.resolve(),
    };
  }

  /** The mirrored repository (proxy.namespaces), undefined for one served from the local store alone. */
  mirrored(name: RepositoryName, sibling?: SiblingAsking): MirroredRepository | undefined {
    return this.namespaces.includes(name) ? new MirroredRepository(this.local.repository(name), this, sibling) : undefined;
  }

  /** Local and upstream pages merged: each holds the first `limit` after `last`, so the union's first `limit` are right. */
  async catalog(limit: number, last?: string): Promise<CatalogPage> {
    const local = await this.local.catalog(limit, last);
    let remote: { repositories: string[]; more: boolean } = { repositories: [], more: false };
    try {
      remote = await this.upstream.catalog(limit, last);
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      this.log.debug({ err: err.message }, "mirror: upstream catalog unavailable; listing local repositories");
    }
    const mirrored = remote.repositories.filter((n): n is RepositoryName => isRepositoryName(n) && this.namespaces.includes(n));
    const names = [...new Set([...local.repositories, ...mirrored])].sort(compareRepositoryNames);
    return { repositories: names.slice(0, limit), more: local.more || remote.more || names.length > limit };
  }

  /** Cuts the connections to the peer (fills in progress fail and discard what they wrote), then closes the local registry. */
  async close(): Promise<void> {
    await this.writeback?.stop();
    this.rangeFills.close();
    await Promise.all([this.upstream.close(), this.siblings?.close()]);
    await Promise.allSettled([...this.filling]);
    await this.local.close();
  }
}

/**
 * A mirrored repository: reads go to the local one first, then to the fleet's owner of a digest
 * or the peer, and what comes back is cached; writes are the local one's, within what the peer
 * leaves to a standby (refuseShadowing).
 */
export class MirroredRepository implements Repository {
  readonly name: RepositoryName;

  constructor(
    private readonly local: StoredRepository,
    private readonly mirror: MirrorRegistry,
    /** Set for a sibling's request: answered from here and the peer, never by asking another sibling (one hop). */
    private readonly sibling: SiblingAsking | undefined,
  ) {
    this.name = local.name;
  }

  private get upstream(): UpstreamRegistry {
    return this.mirror.upstream;
  }

  async statBlob(digest: Digest, keep: boolean): Promise<BlobDescriptor | undefined> {
    const local = await this.local.statBlob(digest, keep);
    if (local) return local;
    let remote: Awaited<ReturnType<UpstreamRegistry["statBlob"]>>;
    try {
      remote = await this.upstream.statBlob(this.name, digest);
    } catch (err) {
      // A client pushing to this mirror asks for each blob whether it is here: a peer that cannot
      // answer must not stop the push. It is told why the answer is only this mirror's own.
      if (err instanceof UpstreamError && (err.status === undefined || err.status >= 500)) {
        throw new RegistryError("BLOB_UNKNOWN", `blob ${digest} is not held by this mirror, and ${err.message}`, { digest }, {
          Warning: warning(112, `Disconnected Operation: ${err.message}`),
        });
      }
      throw upstreamFailure(err);
    }
    return remote.kind === "found" ? { digest, size: remote.size } : undefined;
  }

  /**
   * `range`: a client reading one range (a lazy pull). A range of a blob this mirror lacks is
   * never held back until the whole blob is here: it is served from the fill when its bytes have
   * arrived, and passed through to the fill's source otherwise (docs/mirror.md, lazy pulls).
   */
  async fetchBlob(digest: Digest, range?: string): Promise<BlobContent | undefined> {
    const ranged = range !== undefined;
    const local = (await this.local.fetchBlob(digest)) ?? ((await this.adoptStored(digest)) ? await this.local.fetchBlob(digest) : undefined);
    // A range is short: it takes no relay slot, and is never sent on to a relay.
    const spread = (content: BlobContent) => (ranged ? content : this.relayed(content));
    if (local) {
      this.mirror.metrics.proxyRequests.inc({ kind: "blob", result: "hit" });
      return spread(this.fromStore(local, ranged));
    }
    if (range !== undefined && !this.mirror.fills.has(this.digestKey(digest))) return this.coldRange(digest, range);
    const fetched = await this.fill(digest);
    if (fetched.kind === "missing") return undefined;
    if (fetched.kind === "stored") return spread(this.fromStore(this.local.storedBlob(fetched.blob), ranged));
    const { fill } = fetched;
    // One hop: a sibling's range goes no further than the primary.
    const source = this.sibling ? this.upstream : fetched.source;
    const open = ranged ? (start: number, end: number) => this.openRange(fill, source, start, end) : (start: number, end: number) => this.openFilling(fill, start, end);
    return spread({ digest, size: fill.size, redirectURL: () => Promise.resolve(undefined), open });
  }

  /**
   * A range of a blob nobody here is fetching: asked at once of where its fill would come from
   * (the owner sibling, or the peer). The whole blob's fill follows when the ranges pause
   * (proxy.fillonrange).
   */
  private async coldRange(digest: Digest, range: string): Promise<BlobContent | undefined> {
    if (this.mirror.config.fillOnRange) {
      this.mirror.rangeFills.touch(this.digestKey(digest), () => {
        this.fill(digest).catch((err: unknown) => this.mirror.log.info({ digest, err: String(err) }, "mirror: the fill ranges started could not start"));
      });
    }
    const { found: asked, peer } = await orUpstreamFailure(this.fromFleet(digest, (source) => source.fetchAskedRange(this.name, digest, range)));
    if (asked.kind === "missing") return undefined;
    const { size } = asked;
    let early = "body" in asked ? asked : undefined;
    // The handler opens it at once; a body nobody opens (the client's If-None-Match matched) is let go.
    const unopened = early && setTimeout(() => early?.body.destroy(), UNOPENED_RANGE_MS).unref();
    return {
      digest,
      size,
      redirectURL: () => Promise.resolve(undefined),
      open: async (start, end) => {
        const taken = early;
        early = undefined;
        clearTimeout(unopened);
        if (taken && taken.start === start && taken.end === end) return this.countRange("passthrough", taken.body, end - start);
        taken?.body.destroy();
        return this.passThrough(peer, digest, start, end, size);
      },
    };
  }

  /** A range of a blob being filled: from the fill when its bytes are there, passed through otherwise. */
  private async openRange(fill: BlobFill, source: UpstreamRegistry, start: number, end: number): Promise<Readable> {
    // The whole blob, asked for as a range: the fill's copy, never a second one over the link.
    if (start === 0 && end === fill.size) return this.openFilling(fill, start, end);
    if (fill.visible() >= end) {
      const reader = fill.reader(start, end);
      if (reader) return this.countRange("fill", reader, end - start);
      if (await this.local.blobs.stat(fill.digest)) return this.countRange("store", await this.local.blobs.open(fill.digest, start, end), end - start);
    }
    return this.passThrough(source, fill.digest, start, end, fill.size);
  }

  /**
   * Bytes [start, end) from where the blob comes from, as a direct pull would get them: the
   * primary's word, never kept and never checked here (a lazy client checks its chunks itself).
   * An owner sibling that cannot answer leaves it to the primary.
   */
  private async passThrough(source: UpstreamRegistry, digest: Digest, start: number, end: number, size: number): Promise<Readable> {
    let body: Readable;
    try {
      body = await source.fetchBlobRange(this.name, digest, start, end, size);
    } catch (err) {
      if (!(err instanceof UpstreamError) || source === this.upstream) throw upstreamFailure(err);
      this.mirror.log.info({ digest, start, end, err: err.message }, "mirror: the sibling cannot give this range; asking upstream");
      body = await orUpstreamFailure(this.upstream.fetchBlobRange(this.name, digest, start, end, size));
    }
    return this.countRange("passthrough", body, end - start);
  }

  private countRange(served: "store" | "fill" | "passthrough", body: Readable, bytes: number): Readable {
    const { metrics } = this.mirror;
    metrics.proxyRangeRequests.inc({ served });
    metrics.proxyRangeBytes.inc({ served }, bytes);
    return body;
  }

  /**
   * A sibling's GET, when this mirror already serves `fanout` streams of the blob: sent to a
   * sibling receiving it (the redirect keeps the signed path, which a sibling accepts). A stream
   * served here holds its slot until it ends. A mirror much slower than the asker sends it
   * upstream (421) when no sibling fast enough receives the blob.
   */
  private relayed(content: BlobContent): BlobContent {
    const { relays } = this.mirror;
    const { from, rate } = this.sibling ?? {};
    // Only a live member of the fleet is ever named as a parent: a redirect never leads outside it.
    if (!relays || from === undefined || !this.mirror.siblings?.addresses().includes(from)) return content;
    let decision: RelayDecision | undefined;
    const { metrics } = this.mirror;
    const decide = (): Exclude<RelayDecision, { kind: "decline" }> => {
      decision ??= relays.decide(this.digestKey(content.digest), { address: from, rate });
      if (decision.kind !== "decline") return decision;
      metrics.proxySiblingDeclines.inc();
      throw new RegistryError("MISDIRECTED", `this mirror's link is much slower than ${from}'s, and no sibling fast enough receives blob ${content.digest}: fetch it upstream`);
    };
    return {
      ...content,
      redirectURL: async () => {
        const decided = decide();
        if (decided.kind === "serve") return content.redirectURL();
        metrics.proxySiblingRelays.inc();
        return `${decided.parent}/v2/${this.name}/blobs/${content.digest}`;
      },
      open: async (start, end) => {
        const decided = decide();
        const stream = await content.open(start, end).catch((err: unknown) => {
          if (decided.kind === "serve") decided.release();
          throw err;
        });
        if (decided.kind !== "serve") return stream;
        metrics.proxySiblingStreams.inc();
        // What the stream is to carry, as the cache's bytes are counted.
        metrics.proxySiblingBytes.inc(end - start);
        stream.once("close", () => {
          metrics.proxySiblingStreams.dec();
          decided.release();
        });
        return stream;
      },
    };
  }

  /** A blob of the store, its bytes counted as the cache's (and, for a client's range, as a range's). */
  private fromStore(local: BlobContent, ranged: boolean): BlobContent {
    const { metrics } = this.mirror;
    return {
      ...local,
      open: async (start, end) => {
        try {
          const stream = await local.open(start, end);
          metrics.proxyBytes.inc({ source: "cache" }, end - start);
          return ranged ? this.countRange("store", stream, end - start) : stream;
        } catch (err) {
          if (!(err instanceof RegistryError && err.code === "BLOB_UNKNOWN")) throw err;
          // Its data went from the store without this instance's cache being told: fetch it again.
          const fetched = await this.fill(local.digest);
          if (fetched.kind === "missing") throw err;
          return fetched.kind === "stored" ? this.local.blobs.open(local.digest, start, end) : this.openFilling(fetched.fill, start, end);
        }
      },
    };
  }

  /** Fetches a blob into the store without a client (a pushed manifest names it, or prefetch). */
  async cacheBlob(digest: Digest): Promise<BlobDescriptor | undefined> {
    const fetched = await this.fill(digest);
    if (fetched.kind !== "filling") return fetched.kind === "stored" ? fetched.blob : undefined;
    const { fill } = fetched;
    await fill.done;
    if (fill.error) throw upstreamFailure(fill.error);
    return this.local.blobs.stat(digest);
  }

  /** Whether the local store holds the blob for this repository. */
  async holds(digest: Digest): Promise<boolean> {
    return (await this.local.blobs.stat(digest)) !== undefined;
  }

  /**
   * Before a push is checked: fetches what the manifest names but the local store lacks, as far
   * as the peer can provide it (what it cannot stays missing, and the local check refuses the push).
   */
  private async fillReferences(content: Buffer, contentType: string | undefined): Promise<void> {
    const info = parseManifest(content, contentType);
    await Promise.all([
      ...info.blobs.map(async (d) => (await this.local.blobs.statInStore(d.digest)) ?? (await this.missingBlob(d.digest))),
      ...info.children.map(async (d) => (await this.local.manifests.pullable(d.digest)) || (await this.missingManifest(d.digest))),
    ]);
  }

  private async missingBlob(digest: Digest): Promise<BlobDescriptor | undefined> {
    try {
      return await this.cacheBlob(digest);
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      this.mirror.log.warn({ digest, err: err.message }, "mirror: a pushed manifest names a blob the upstream could not provide");
      return undefined;
    }
  }

  private async missingManifest(digest: Digest): Promise<boolean> {
    try {
      return (await this.cacheManifest(digest)) !== undefined;
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      this.mirror.log.warn({ digest, err: err.message }, "mirror: a pushed index names a manifest the upstream could not provide");
      return false;
    }
  }

  /**
   * The blob's data is in the store for another repository: one HEAD to the peer decides whether
   * this repository has it too, instead of fetching it again.
   */
  private async adoptStored(digest: Digest): Promise<boolean> {
    if (!(await this.mirror.local.blobs.stat(digest))) return false;
    const remote = await this.upstream.statBlob(this.name, digest).catch(() => undefined);
    if (remote?.kind !== "found") return false;
    await this.local.blobs.link(digest);
    return true;
  }

  /** A blob's or a manifest's key in this repository, for its fetch and its relay. */
  private digestKey(digest: Digest): string {
    return `${this.name}@${digest}`;
  }

  private fill(digest: Digest): Promise<Fetched> {
    const key = this.digestKey(digest);
    this.mirror.metrics.proxyRequests.inc({ kind: "blob", result: this.mirror.fills.has(key) ? "coalesced" : "miss" });
    return this.mirror.fills.run(
      key,
      () => {
        // In flight from the first request to the peer until the fill is over, or never began.
        const { metrics } = this.mirror;
        metrics.proxyFetchesInFlight.inc();
        const fetching = orUpstreamFailure(this.startFill(digest));
        void fetching.then((f) => (f.kind === "filling" ? f.fill.done : undefined), () => undefined).then(() => metrics.proxyFetchesInFlight.dec());
        return fetching;
      },
      (fetched) => (fetched.kind === "filling" ? fetched.fill.joinable : Promise.resolve()),
    );
  }

  /**
   * Asks the sibling mirror that owns a digest first, when another one does; the peer when this
   * instance owns it, when the request came from a sibling, or when the owner cannot answer (down,
   * slow to answer, or without it).
   */
  private async fromFleet<T>(digest: Digest, ask: (peer: UpstreamRegistry) => Promise<Found<T>>): Promise<{ found: Found<T>; from: FetchSource; peer: UpstreamRegistry }> {
    const owner = this.sibling ? undefined : this.mirror.siblings?.owner(digest);
    if (owner) {
      try {
        const found = await ask(owner.client);
        if (found.kind === "found") return { found, from: "sibling", peer: owner.client };
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err;
        if (err.status === 421) this.mirror.log.debug({ digest, sibling: owner.address }, "mirror: the sibling owning this digest has a much slower link; asking upstream");
        else this.mirror.log.info({ digest, sibling: owner.address, err: err.message }, "mirror: the sibling owning this digest cannot give it; asking upstream");
      }
    }
    return { found: await ask(this.upstream), from: "upstream", peer: this.upstream };
  }

  private async startFill(digest: Digest): Promise<Fetched> {
    // The caller found nothing in the store, but a fill may have ended (its blob stored, its key
    // released) since it looked: fetching again would bring the blob over the link twice.
    const stored = await this.local.blobs.stat(digest);
    if (stored) return { kind: "stored", blob: stored };
    const { found: remote, from, peer } = await this.fromFleet(digest, (asked) => asked.fetchBlob(this.name, digest));
    if (remote.kind === "missing") return remote;
    const started = Date.now();
    const sink = await this.mirror.local.uploads.receive(this.local.blobs).catch((err: unknown) => {
      this.mirror.log.warn({ digest, err: String(err) }, "mirror: cannot write to the store; serving the blob uncached");
      return undefined;
    });
    let spool: Spool;
    let store: FillStore | undefined;
    try {
      const upload = sink && (await uploadSpoolFile(sink));
      spool = upload ? Spool.over(upload, this.mirror.spoolDir) : await Spool.create(this.mirror.spoolDir);
      store = sink && { sink, spooled: upload !== undefined };
    } catch (err) {
      remote.body.destroy();
      await sink?.abort().catch(() => undefined);
      this.mirror.log.error({ digest, spoolDir: this.mirror.spoolDir, err: String(err) }, "mirror: cannot open a spool file");
      throw new RegistryError("UNAVAILABLE", `the mirror cannot spool blob ${digest} now (a local I/O error, in its log); retry later`);
    }
    // A sibling that fails mid-blob leaves the rest to the peer.
    const resume = (start: number) => this.upstream.fetchBlobRange(this.name, digest, start, remote.size, remote.size);
    const fill = new BlobFill({ digest, size: remote.size, body: remote.body, resume }, spool, store, this.mirror.log);
    const { filling, metrics } = this.mirror;
    filling.add(fill.done);
    void fill.done.then(() => {
      filling.delete(fill.done);
      if (fill.error) return metrics.proxyUpstreamErrors.inc();
      const rate = this.mirror.siblings?.linkRate.record(fill.size, Date.now() - started);
      if (rate !== undefined) metrics.proxyLinkRate.set(rate);
      metrics.proxyBytes.inc({ source: from }, fill.firstBodyBytes);
      metrics.proxyBytes.inc({ source: "upstream" }, fill.size - fill.firstBodyBytes);
    });
    return { kind: "filling", fill, source: peer };
  }

  private async openFilling(fill: BlobFill, start: number, end: number) {
    const reader = fill.reader(start, end);
    if (reader) return reader;
    // The fill ended between lookup and open: its bytes are in the store now, unless caching failed.
    if (await this.local.blobs.stat(fill.digest)) return this.local.blobs.open(fill.digest, start, end);
    throw new RegistryError("UNAVAILABLE", `blob ${fill.digest} was fetched from upstream ${this.upstream.url} but not cached; retry`);
  }

  async manifest(reference: Tag | Digest): Promise<ManifestLookup | undefined> {
    if (!isDigest(reference)) return this.taggedManifest(reference);
    const local = await this.local.manifests.get(reference);
    if (local) {
      this.countManifest("hit");
      return { manifest: local };
    }
    this.countManifest(this.mirror.manifestFetches.has(this.digestKey(reference)) ? "coalesced" : "miss");
    const manifest = await orUpstreamFailure(this.cacheManifest(reference));
    return manifest && { manifest };
  }

  /**
   * A tag is served from the store while its last confirmation is younger than proxy.ttl; after
   * that a HEAD asks the peer where it points. A peer that cannot answer gets the cached copy
   * served, marked stale.
   */
  private async taggedManifest(tag: Tag): Promise<ManifestLookup | undefined> {
    const localDigest = await this.local.tags.resolve(tag);
    const local = localDigest && (await this.local.manifests.get(localDigest));
    // A push this standby took is its answer until the peer has it: the peer's value is older.
    if (this.mirror.writeback?.holds(this.name, tag)) {
      this.countManifest("hit");
      return local ? { manifest: local } : undefined;
    }
    const validated = this.mirror.validatedTags.get(this.tagKey(tag));
    if (local && validated !== undefined && Date.now() - validated < this.mirror.config.ttlMs) {
      this.countManifest("hit");
      return { manifest: local };
    }
    this.countManifest(this.mirror.manifestFetches.has(this.tagKey(tag)) ? "coalesced" : local ? "revalidated" : "miss");
    try {
      const manifest = await this.mirror.manifestFetches.run(this.tagKey(tag), () => this.revalidate(tag, local || undefined));
      return manifest && { manifest };
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      if (local) {
        this.countManifest("stale");
        return { manifest: local, stale: err.message };
      }
      throw upstreamFailure(err);
    }
  }

  /**
   * A standby's push (proxy.pushes: writeback, while the peer does not answer; otherwise the HTTP
   * layer has refused it): stored here, and journaled for the peer before it is acknowledged.
   */
  async putManifest(reference: Tag | Digest, content: Buffer, contentType: string | undefined): Promise<PutResult> {
    const tag = isDigest(reference) ? undefined : reference;
    if (tag) await this.refuseShadowing(tag);
    await this.fillReferences(content, contentType);
    const base = tag && ((await this.local.tags.resolve(tag)) ?? null);
    const put = await this.local.putManifest(reference, content, contentType);
    if (tag) this.mirror.validatedTags.delete(this.tagKey(tag));
    const entry = { kind: "manifest", name: this.name, digest: put.digest, mediaType: put.info.mediaType, at: new Date().toISOString() } as const;
    await this.mirror.writeback?.record(tag ? { ...entry, tag, base: base ?? null } : entry);
    return put;
  }

  async untag(tag: Tag): Promise<boolean> {
    await this.refuseShadowing(tag);
    const digest = await this.local.tags.resolve(tag);
    const untagged = await this.local.untag(tag);
    if (untagged && digest) await this.mirror.writeback?.record({ kind: "untag", name: this.name, tag, digest, at: new Date().toISOString() });
    return untagged;
  }

  async deleteManifest(digest: Digest): Promise<boolean> {
    const deleted = await this.local.deleteManifest(digest);
    if (deleted) await this.mirror.writeback?.record({ kind: "delete", name: this.name, digest, at: new Date().toISOString() });
    return deleted;
  }

  unlinkBlob(digest: Digest): Promise<boolean> {
    return this.local.unlinkBlob(digest);
  }

  mountBlob(from: RepositoryName, digest: Digest): Promise<BlobDescriptor | undefined> {
    return this.local.mountBlob(from, digest);
  }

  startUpload(): Promise<UploadStatus> {
    return this.local.startUpload();
  }

  uploadStatus(id: string): Promise<UploadStatus | undefined> {
    return this.local.uploadStatus(id);
  }

  appendUpload(id: string, body: IncomingBody, expectedOffset?: number): Promise<UploadStatus> {
    return this.local.appendUpload(id, body, expectedOffset);
  }

  completeUpload(id: string, digest: Digest, body: IncomingBody | undefined): Promise<BlobDescriptor> {
    return this.local.completeUpload(id, digest, body);
  }

  cancelUpload(id: string): Promise<void> {
    return this.local.cancelUpload(id);
  }

  /**
   * A tag the peer answers for is the peer's, whatever this mirror is configured to take: a local
   * write over it would be served in the primary's name. Only a peer that does not answer (down,
   * 5xx) leaves the tag to a standby.
   */
  private async refuseShadowing(tag: Tag): Promise<void> {
    const { url } = this.upstream;
    let head: Awaited<ReturnType<UpstreamRegistry["headManifest"]>>;
    try {
      head = await this.upstream.headManifest(this.name, tag);
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      if (err.status === undefined || err.status >= 500) return;
      throw new RegistryError("DENIED", `${this.name}:${tag} cannot be written here: whether ${url} holds it is unknown (${err.message})`);
    }
    if (head.kind === "missing") return;
    throw new RegistryError(
      "DENIED",
      `${this.name}:${tag} is a tag of ${url}${head.digest ? ` (${head.digest})` : ""}: a mirror never writes over a tag its upstream answers for; push to ${this.mirror.config.remoteUrls[0]}`,
      { name: this.name, tag },
    );
  }

  /** hit, miss, coalesced; for tags also revalidated (a HEAD to the peer) and stale (peer down, cached copy served). */
  private countManifest(result: "hit" | "miss" | "coalesced" | "revalidated" | "stale"): void {
    this.mirror.metrics.proxyRequests.inc({ kind: "manifest", result });
  }

  private tagKey(tag: Tag): string {
    return tagKey(this.name, tag);
  }

  private async revalidate(tag: Tag, local: StoredManifest | undefined): Promise<StoredManifest | undefined> {
    let current: StoredManifest | undefined;
    if (local) {
      const head = await this.upstream.headManifest(this.name, tag);
      // A tag only this store has was pushed here: it stays.
      if (head.kind === "missing" || head.digest === local.digest) current = local;
      else if (head.digest) current = await this.cacheManifest(head.digest);
      if (current && current !== local) await this.local.tags.tag(tag, current.digest);
    }
    if (!current) {
      const remote = await this.upstream.fetchManifest(this.name, tag);
      if (remote.kind === "missing") return local;
      current = await this.store(tag, remote);
    }
    this.mirror.validatedTags.set(this.tagKey(tag), Date.now());
    return current;
  }

  private cacheManifest(digest: Digest): Promise<StoredManifest | undefined> {
    return this.mirror.manifestFetches.run(this.digestKey(digest), async () => {
      // In the store already, or since the caller looked: a fetch that ended meanwhile stored it
      // (as startFill, for blobs).
      const stored = await this.local.manifests.get(digest);
      if (stored) return stored;
      const { found: remote } = await this.fromFleet(digest, (peer) => peer.fetchManifest(this.name, digest));
      return remote.kind === "found" ? this.store(digest, remote) : undefined;
    });
  }

  /** Stores what the peer sent (already checked against its digest); its blobs come when asked for. */
  private async store(reference: Tag | Digest, remote: UpstreamManifest): Promise<StoredManifest> {
    const { digest, info } = await this.local.manifests.put(reference, remote.content, remote.mediaType, { checkReferences: false });
    return { digest, mediaType: info.mediaType, content: remote.content };
  }

  async listTags(): Promise<Tag[] | undefined> {
    const local = await this.local.listTags();
    let remote: string[] | undefined;
    try {
      remote = await this.upstream.tags(this.name);
    } catch (err) {
      if (local && err instanceof UpstreamError) return local;
      throw upstreamFailure(err);
    }
    if (!remote) return local;
    return [...new Set([...(local ?? []), ...remote.filter(isTag)])].sort();
  }

  async referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    return ofArtifactType(await this.referrerDescriptors(subject), artifactType);
  }

  private async referrerDescriptors(subject: Digest): Promise<Descriptor[]> {
    const local = await this.local.referrerDescriptors(subject);
    const remote = await this.upstream.referrers(this.name, subject).catch((err: unknown) => {
      if (!(err instanceof UpstreamError)) throw err;
      return [];
    });
    const known = new Set(local.map((d) => d.digest));
    return [...local, ...remote.filter((d) => !known.has(d.digest))];
  }
}
