/**
 * The error base of pipe. Every error a user can cause is a PipelineError with a stable code;
 * the CLI prints its message (no stack trace) and exits with its exit code.
 * Anchors: Vitest `node/errors.ts` (one class per failure, stable codes), DVC `DvcException`.
 */

/** Stable error codes, one per failure kind. */
export type ErrorCode =
  | 'PIPE_FILE_NOT_FOUND'
  | 'PIPE_YAML_SYNTAX'
  | 'PIPE_SCHEMA'
  | 'PIPE_UNKNOWN_NEEDS'
  | 'PIPE_CYCLE'
  | 'PIPE_USAGE'
  | 'PIPE_BACKEND'
  | 'PIPE_TRACKING'
  | 'PIPE_DATA'
  | 'PIPE_MODEL'
  | 'STAGE_FAILED'
  | 'PIPE_INTERRUPTED'
  | 'PIPE_DISK';

/** Base class; `exitCode` is 2 for bad input or usage, 1 for a failed stage, 130 for Ctrl-C. */
export class PipelineError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly exitCode: 1 | 2 | 130 = 2,
  ) {
    super(message);
    this.name = 'PipelineError';
  }
}

/** A stage threw; `stage` is its name in the pipeline (the path, like listr2's ListrError.path). */
export class StageFailedError extends PipelineError {
  constructor(
    readonly stage: string,
    override readonly cause: unknown,
  ) {
    super('STAGE_FAILED', `stage '${stage}' failed: ${cause instanceof Error ? cause.message : String(cause)}`, 1);
  }
}
