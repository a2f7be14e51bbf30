import { hostname } from "node:os";
import { Metrics } from "../metrics/metrics.js";
import { applyRetention, planRetention, type RepositoryPlan } from "../gc/retention.js";
import { createLogger } from "../log.js";
import { Registry } from "../registry/registry.js";
import { createDriver } from "../config/storage-driver.js";
import { commandArgs } from "./args.js";
import { loadOrReport } from "./config-file.js";
import { usageError } from "./help.js";
import { registryOptions } from "./serve.js";

/** A plan as lines: each tag kept (and why) or going, each manifest going. */
function describe(plan: RepositoryPlan, dryRun: boolean): string[] {
  const go = dryRun ? "would remove" : "remove";
  return [
    ...plan.tags.map((t) => (t.kept ? `keep ${plan.name}:${t.tag} (${t.reason})` : `${go} ${plan.name}:${t.tag} (${t.reason})`)),
    ...plan.manifests.map((m) => `${go} ${plan.name}@${m.digest} (${m.reason})`),
  ];
}

/**
 * `lain-registry retention [config.yml] [--dry-run]`: applies storage.retention's rules now. The
 * dry run lists what would go and which rule keeps each survivor. Safe while the registry serves.
 * Exit 0 done, 2 usage or configuration error.
 */
export async function retentionCommand(args: string[]): Promise<number> {
  const parsed = commandArgs(args, { "dry-run": { type: "boolean" } });
  if (typeof parsed === "string") return usageError("retention", parsed);
  const loaded = await loadOrReport(parsed.config);
  if (!loaded) return 2;
  const { config } = loaded;
  const { rules } = config.storage.retention;
  if (rules.length === 0) {
    process.stdout.write(`${parsed.config} has no storage.retention rules: everything is kept\n`);
    return 0;
  }
  const driver = await createDriver(config.storage);
  await driver.verify?.();
  const log = createLogger(config);
  const registry = new Registry(driver, registryOptions(config, driver, log));
  const notifier = config.notifications && new (await import("../notifications/notifier.js")).Notifier(config.notifications, hostname(), new Metrics(), log);
  const dryRun = parsed.values["dry-run"] === true;
  try {
    if (dryRun) {
      const plans = await planRetention(registry, rules);
      for (const plan of plans) for (const line of describe(plan, true)) process.stdout.write(`${line}\n`);
      const tags = plans.reduce((n, p) => n + p.tags.filter((t) => !t.kept).length, 0);
      const manifests = plans.reduce((n, p) => n + p.manifests.length, 0);
      process.stdout.write(`${plans.length} repositories governed: would remove ${tags} tags and ${manifests} manifests\n`);
      return 0;
    }
    const report = await applyRetention(registry, rules, notifier && ((event) => notifier.publish(event)));
    for (const plan of report.plans) for (const line of describe(plan, false).filter((l) => l.startsWith("keep"))) process.stdout.write(`${line}\n`);
    for (const removed of [...report.removedTags, ...report.removedManifests]) process.stdout.write(`removed ${removed}\n`);
    for (const skipped of report.skipped) process.stdout.write(`left ${skipped} (pushed during the run)\n`);
    process.stdout.write(`${report.plans.length} repositories governed: removed ${report.removedTags.length} tags and ${report.removedManifests.length} manifests; garbage collection frees their blobs\n`);
    return 0;
  } finally {
    await notifier?.close(5000);
    await registry.close();
  }
}
