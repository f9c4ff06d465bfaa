/**
 * The stage kinds and what each reads upstream, declared once. The graph check
 * (src/dag/checks.ts) refuses a pipeline in which a stage lacks a required input, and the runner
 * serves `ctx.upstream`/`ctx.maybeUpstream` only the kinds declared here, so the two cannot
 * drift apart. The implementations are the StageTable of stages/index.ts (typed by these
 * names, so it has exactly one definition per kind); the schema's `kind` enum and its branches
 * are checked against this list by test/unit/catalogs.test.ts.
 * Adding a kind: a row here, stages/<kind>.ts, its rows in stages/meta.ts and stages/index.ts, its schema.
 */

/** What a kind reads from the stages upstream of it (transitively). */
export interface StageInputs {
  /** Each inner list is one required input: a stage of one of these kinds must be upstream. */
  readonly inputs: readonly (readonly string[])[];
  /** Kinds read when one is upstream, without requiring it. @defaultValue [] */
  readonly optional?: readonly string[];
}

/** Every stage kind, in pipeline order. */
export const STAGE_KINDS = {
  download: { inputs: [] },
  augment: { inputs: [['download']] },
  // build-model reads a training stage for `weights: upstream` (transfer learning within one pipeline).
  'build-model': { inputs: [['download']], optional: ['augment', 'freeze-train', 'unfreeze-train'] },
  // A training stage continues an earlier one, or starts from a model and augmented data.
  'freeze-train': { inputs: [['augment', 'freeze-train', 'unfreeze-train'], ['build-model', 'freeze-train', 'unfreeze-train']] },
  'unfreeze-train': { inputs: [['augment', 'freeze-train', 'unfreeze-train'], ['build-model', 'freeze-train', 'unfreeze-train']] },
  evaluate: { inputs: [['freeze-train', 'unfreeze-train']] },
  plot: { inputs: [['freeze-train', 'unfreeze-train']], optional: ['evaluate'] },
} as const satisfies Record<string, StageInputs>;

/** A stage kind name. */
export type StageKindName = keyof typeof STAGE_KINDS;

// Every kind named as an input is a kind (a typo fails to compile here).
STAGE_KINDS satisfies Record<StageKindName, { inputs: readonly (readonly StageKindName[])[]; optional?: readonly StageKindName[] }>;

/** The kinds `kind` may read: its inputs and its optional inputs. */
export function readableKinds(kind: StageKindName): Set<StageKindName> {
  const k: StageInputs = STAGE_KINDS[kind];
  return new Set([...k.inputs.flat(), ...(k.optional ?? [])] as StageKindName[]);
}
