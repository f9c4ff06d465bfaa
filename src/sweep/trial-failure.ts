/**
 * Why a trial failed, as far as running it again could help: a trial whose config or data is
 * wrong, or whose loss went non-finite, fails the same way every time (same config, same seed),
 * so queue workers do not retry it (BullMQ's UnrecoverableError); anything else (a lost
 * connection, a killed process, a full disk) may pass on another attempt.
 */
import { DatasetError } from '../data/dataset.js';
import { PipelineError } from '../errors.js';
import { NonFiniteLossError } from '../train/loop.js';

/**
 * - `input`: the pipeline or its data is wrong (validation, a missing or damaged dataset, a
 *   model or backend the config cannot have): exit-2 errors and PIPE_DATA / PIPE_MODEL.
 * - `numeric`: training diverged (a non-finite loss).
 * - `transient`: anything else; worth another attempt.
 */
export type FailureKind = 'input' | 'numeric' | 'transient';

/** Codes of failures that repeat on every attempt; PIPE_TRACKING (a server problem) is not one. */
const INPUT_CODES = new Set(['PIPE_FILE_NOT_FOUND', 'PIPE_YAML_SYNTAX', 'PIPE_SCHEMA', 'PIPE_UNKNOWN_NEEDS', 'PIPE_CYCLE', 'PIPE_USAGE', 'PIPE_BACKEND', 'PIPE_DATA', 'PIPE_MODEL']);

/** Classifies an error a trial ended with, following its `cause` chain (a stage failure wraps the stage's error). */
export function classifyFailure(e: unknown): FailureKind {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 8; x = x.cause, depth++) {
    if (x instanceof NonFiniteLossError) return 'numeric';
    if (x instanceof DatasetError || x instanceof RangeError) return 'input';
    if (x instanceof PipelineError && INPUT_CODES.has(x.code)) return 'input';
  }
  return 'transient';
}
