import type { Logger } from "pino";
import type { RetentionRule } from "../config/config.js";
import type { EventInput } from "../notifications/events.js";
import { listRepositories } from "../registry/catalog.js";
import type { Digest } from "../registry/digest.js";
import { layout } from "../registry/layout.js";
import type { RepositoryName, Tag } from "../registry/names.js";
import { PullTimes } from "../registry/pull-times.js";
import type { Registry, StoredRepository } from "../registry/registry.js";
import { unlessMissing } from "../storage/driver.js";
import { linksBelow, refsOf } from "./collect.js";
import { repeat } from "./repeat.js";

/** What the run decided for one tag: kept (and by which rule and criterion) or removed. */
export interface TagVerdict {
  tag: Tag;
  digest: Digest;
  /** When the tag was last pointed at its manifest (its link's time). */
  pushed: number;
  /** When its manifest was last pulled, if ever. */
  pulled: number | undefined;
  kept: boolean;
  reason: string;
}

/** A manifest the run removes: made untagged by it, untagged for long, or a referrer of nothing. */
export interface ManifestVerdict {
  digest: Digest;
  reason: string;
}

export interface RepositoryPlan {
  name: RepositoryName;
  /** The rules that govern it (their positions in storage.retention.rules, from 0). */
  rules: number[];
  tags: TagVerdict[];
  manifests: ManifestVerdict[];
}

export interface RetentionReport {
  plans: RepositoryPlan[];
  /** What a real run removed, and what it left because a push changed it during the run. */
  removedTags: string[];
  removedManifests: string[];
  skipped: string[];
}

/** Deletions go out as registry events, as an API DELETE's would. */
export type DeletionEvents = (event: EventInput) => void;

const whole = (pattern: string) => new RegExp(`^(?:${pattern})$`);

/** The tags each rule with `keep` keeps, and why; a tag no such rule keeps goes. Rules without `keep` say nothing of tags. */
function judgeTags(rules: Array<{ index: number; rule: RetentionRule }>, tags: Omit<TagVerdict, "kept" | "reason">[], now: number): TagVerdict[] {
  const deciding = rules.filter(({ rule }) => rule.keep);
  const reasons = new Map<Tag, string>();
  const keepIf = (tag: Tag, reason: string) => void (reasons.has(tag) || reasons.set(tag, reason));
  for (const { index, rule } of deciding) {
    const keep = rule.keep!;
    const at = `rule ${index + 1}`;
    for (const t of tags) {
      const always = keep.always.find((p) => whole(p).test(t.tag));
      if (always !== undefined) keepIf(t.tag, `${at}: always (${always})`);
      if (keep.tags !== undefined && whole(keep.tags).test(t.tag)) keepIf(t.tag, `${at}: tags ${keep.tags}`);
      if (keep.pushedWithinMs !== undefined && now - t.pushed <= keep.pushedWithinMs) keepIf(t.tag, `${at}: pushed within ${keep.pushedWithinMs / 1000} s`);
      if (keep.pulledWithinMs !== undefined && t.pulled !== undefined && now - t.pulled <= keep.pulledWithinMs) keepIf(t.tag, `${at}: pulled within ${keep.pulledWithinMs / 1000} s`);
    }
    if (keep.newestPushed !== undefined) {
      for (const t of [...tags].sort((a, b) => b.pushed - a.pushed).slice(0, keep.newestPushed)) keepIf(t.tag, `${at}: among the newest ${keep.newestPushed} pushed`);
    }
    if (keep.newestPulled !== undefined) {
      const pulled = tags.filter((t) => t.pulled !== undefined).sort((a, b) => b.pulled! - a.pulled!);
      for (const t of pulled.slice(0, keep.newestPulled)) keepIf(t.tag, `${at}: among the newest ${keep.newestPulled} pulled`);
    }
  }
  return tags.map((t) => {
    if (deciding.length === 0) return { ...t, kept: true, reason: "no rule governs its tags" };
    const reason = reasons.get(t.tag);
    return { ...t, kept: reason !== undefined, reason: reason ?? "no rule keeps it" };
  });
}

/** The manifests an index or referrers chain reaches from `roots` (an index's children stay with it). */
function reachable(roots: Iterable<Digest>, children: Map<Digest, Digest[]>): Set<Digest> {
  const seen = new Set<Digest>();
  const queue = [...roots];
  for (let d = queue.pop(); d !== undefined; d = queue.pop()) {
    if (seen.has(d)) continue;
    seen.add(d);
    queue.push(...(children.get(d) ?? []));
  }
  return seen;
}

async function planRepository(registry: Registry, name: RepositoryName, rules: Array<{ index: number; rule: RetentionRule }>, now: number): Promise<RepositoryPlan> {
  const repo = registry.repository(name);
  const { driver } = registry;
  const pulls = await PullTimes.read(driver, name);
  const tagged: Omit<TagVerdict, "kept" | "reason">[] = [];
  for (const tag of (await repo.tags.list()) ?? []) {
    const digest = await repo.tags.resolve(tag);
    const link = digest && (await unlessMissing(() => driver.stat(layout.tagCurrentLink(name, tag))));
    if (digest && link) tagged.push({ tag, digest, pushed: link.modTime.getTime(), pulled: pulls.get(digest) });
  }
  const tags = judgeTags(rules, tagged, now);
  const manifests: ManifestVerdict[] = [];
  const untaggedMs = Math.max(...rules.map(({ rule }) => rule.untaggedOlderThanMs ?? -1));
  const orphans = rules.some(({ rule }) => rule.orphanReferrers);
  const removedTargets = new Set(tags.filter((t) => !t.kept).map((t) => t.digest));
  const keptTargets = new Set(tags.filter((t) => t.kept).map((t) => t.digest));
  if (removedTargets.size === 0 && untaggedMs < 0 && !orphans) return { name, rules: rules.map((r) => r.index), tags, manifests };

  // Every manifest of the repository: what an index lists and what each refers to.
  const revisions = await linksBelow(driver, layout.revisionsDir(name));
  const children = new Map<Digest, Digest[]>();
  const subjects = new Map<Digest, Digest>();
  for (const { digest } of revisions) {
    const stored = await repo.manifests.get(digest);
    if (!stored) continue;
    const refs = refsOf(stored.content);
    children.set(digest, refs.children);
    if (refs.subject) subjects.set(digest, refs.subject);
  }
  const kept = reachable(keptTargets, children);
  const gone = new Set<Digest>();
  for (const digest of removedTargets) {
    if (kept.has(digest)) continue;
    for (const d of reachable([digest], children)) {
      if (kept.has(d) || gone.has(d)) continue;
      gone.add(d);
      manifests.push({ digest: d, reason: d === digest ? "its tags were removed" : "in an index whose tags were removed" });
    }
  }
  const taggedAtAll = reachable(tags.map((t) => t.digest), children);
  // A child of an untagged index goes with it, not on its own.
  const listed = new Set([...children.values()].flat());
  for (const { digest, written } of revisions) {
    if (gone.has(digest) || taggedAtAll.has(digest) || subjects.has(digest) || listed.has(digest) || untaggedMs < 0 || now - written <= untaggedMs) continue;
    gone.add(digest);
    manifests.push({ digest, reason: `untagged for more than ${untaggedMs / 1000} s` });
  }
  if (orphans) {
    const present = new Set(revisions.map((r) => r.digest).filter((d) => !gone.has(d)));
    for (const [digest, subject] of subjects) {
      if (gone.has(digest) || present.has(subject)) continue;
      gone.add(digest);
      manifests.push({ digest, reason: `refers to ${subject}, which is gone` });
    }
  }
  return { name, rules: rules.map((r) => r.index), tags, manifests };
}

/** What the rules decide for every repository one of them governs (a dry run: nothing changes). */
export async function planRetention(registry: Registry, rules: readonly RetentionRule[], now = Date.now()): Promise<RepositoryPlan[]> {
  const compiled = rules.map((rule, index) => ({ index, rule, matches: whole(rule.repositories) }));
  const plans: RepositoryPlan[] = [];
  const { repositories } = await listRepositories(registry.driver, Number.MAX_SAFE_INTEGER);
  for (const name of repositories) {
    const governing = compiled.filter((c) => c.matches.test(name));
    if (governing.length > 0) plans.push(await planRepository(registry, name, governing, now));
  }
  return plans;
}

/** The plan of one repository, for the console: its rules' verdicts (empty rules: not governed). */
export async function planFor(registry: Registry, rules: readonly RetentionRule[], name: RepositoryName, now = Date.now()): Promise<RepositoryPlan> {
  const governing = rules.map((rule, index) => ({ index, rule })).filter(({ rule }) => whole(rule.repositories).test(name));
  return governing.length > 0 ? planRepository(registry, name, governing, now) : { name, rules: [], tags: [], manifests: [] };
}

/**
 * Plans, then removes through the domain what the plan removes, as API DELETEs would: tags
 * first, then manifests. Each is looked at again right before: a tag pushed or moved during the
 * run, or a manifest a tag points at again, stays.
 */
export async function applyRetention(registry: Registry, rules: readonly RetentionRule[], events?: DeletionEvents, now = Date.now()): Promise<RetentionReport> {
  const plans = await planRetention(registry, rules, now);
  const report: RetentionReport = { plans, removedTags: [], removedManifests: [], skipped: [] };
  for (const plan of plans) {
    const repo = registry.repository(plan.name);
    for (const verdict of plan.tags.filter((t) => !t.kept)) {
      if (!(await unchanged(registry, repo, verdict))) {
        report.skipped.push(`${plan.name}:${verdict.tag}`);
        continue;
      }
      if (await repo.untag(verdict.tag)) {
        report.removedTags.push(`${plan.name}:${verdict.tag}`);
        events?.(deletion(plan.name, { tag: verdict.tag }));
      }
    }
    for (const { digest } of plan.manifests) {
      if ((await repo.tags.lookup(digest)).length > 0) {
        report.skipped.push(`${plan.name}@${digest}`);
        continue;
      }
      if (await repo.deleteManifest(digest)) {
        report.removedManifests.push(`${plan.name}@${digest}`);
        events?.(deletion(plan.name, { digest }));
      }
    }
    await PullTimes.compact(registry.driver, plan.name);
  }
  return report;
}

/** Whether a tag still points where the plan saw it, pushed no later. */
async function unchanged(registry: Registry, repo: StoredRepository, verdict: TagVerdict): Promise<boolean> {
  if ((await repo.tags.resolve(verdict.tag)) !== verdict.digest) return false;
  const link = await unlessMissing(() => registry.driver.stat(layout.tagCurrentLink(repo.name, verdict.tag)));
  return link !== undefined && link.modTime.getTime() <= verdict.pushed;
}

function deletion(repository: RepositoryName, what: { tag: Tag } | { digest: Digest }): EventInput {
  return {
    action: "delete",
    target: { repository, ...what },
    request: { id: "retention", method: "DELETE", useragent: "lain-registry retention" },
    actor: { name: "storage.retention" },
  };
}

/** What a retention run inside the server reports to the metrics. */
export interface RetentionCounters {
  ran(report: RetentionReport): void;
  failed(): void;
}

/** storage.retention inside the server: a run every interval (the first after one interval). Answers its stop. */
export function scheduleRetention(
  registry: Registry,
  options: { intervalMs: number; rules: readonly RetentionRule[]; paused: () => boolean },
  log: Logger,
  counters: RetentionCounters,
  events?: DeletionEvents,
): () => void {
  const run = async () => {
    try {
      const report = await applyRetention(registry, options.rules, events);
      counters.ran(report);
      log.info({ repositories: report.plans.length, tags: report.removedTags.length, manifests: report.removedManifests.length, skipped: report.skipped.length }, "retention done");
    } catch (err) {
      counters.failed();
      log.warn({ err: err instanceof Error ? err.message : String(err) }, "retention failed; retrying next interval");
    }
  };
  return repeat(options.intervalMs, run, { paused: options.paused, immediately: false });
}
