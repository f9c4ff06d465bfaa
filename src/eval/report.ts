/**
 * What the evaluate stage produces: report.json, read by the plot stage, the CLI summary, sweeps
 * and `pipe runs`.
 */
import type { SplitReport } from './split-report.js';

/** A split evaluate can score. */
export type EvalSplit = 'test' | 'train' | 'val';

/** report.json (and the stage's output). The flat `test_*` fields repeat `splits.test` for the CLI summary. */
export interface EvalReport {
  /** Mean softmax cross-entropy on the test split, nats. */
  test_loss: number;
  /** Top-1 test accuracy in [0, 1]. */
  test_accuracy: number;
  /** The k of `test_top_k_accuracy`. */
  top_k: number;
  /** Top-k test accuracy in [0, 1]. */
  test_top_k_accuracy: number;
  /** Test images scored. */
  images: number;
  /** Test-split inference throughput (batching, preprocessing and forward pass), images/s. */
  images_per_second: number;
  /** Global epoch (1-based) of the best model; absent when no epoch ran (no JSON null for a number). */
  best_epoch?: number;
  best_phase?: string;
  /** Global epoch (1-based) at which the backbone was unfrozen; absent when it never was. */
  unfreeze_epoch?: number;
  classes: string[];
  /** Every scored split by name; `test` always present. */
  splits: Partial<Record<EvalSplit, SplitReport>> & { test: SplitReport };
}
