import type { Digest } from "../registry/digest.js";
import { digestDir, layout } from "../registry/layout.js";

/** What the collection protocol keeps in the store, beside distribution's layout (which skips `_gc`). */
const GC_ROOT = `${layout.root}/_gc`;

export const GC_MARK_KINDS = ["tombstone", "claim", "writer"] as const;
export type GcMarkKind = (typeof GC_MARK_KINDS)[number];

export const gcPaths = {
  /** Present while a collector of an earlier version sweeps (distribution ignores it). */
  sweepMarker: `${GC_ROOT}/sweeping`,
  /** Rewritten before anything removes blob data or links (removal-fence.ts). */
  removalEpoch: `${GC_ROOT}/epoch`,
  /**
   * Per blob, one directory of marks (collection-guard.ts), so that a single listing shows them
   * all: a collection's tombstone and claim, a writer moving its data.
   */
  marks(digest: Digest): string {
    return `${GC_ROOT}/marks/${digestDir(digest)}`;
  },
  mark(digest: Digest, kind: GcMarkKind, id: string): string {
    return `${gcPaths.marks(digest)}/${kind}-${id}`;
  },
  /** Their root, for removing what a crashed collector or writer left. */
  marksRoot: `${GC_ROOT}/marks`,
  /** Written as a collection starts, so that it reads its start off the store's own clock. */
  run(run: string): string {
    return `${gcPaths.runsRoot}/${run}`;
  },
  runsRoot: `${GC_ROOT}/runs`,
} as const;
