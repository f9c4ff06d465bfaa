/** Which trial failures a queue worker retries (src/sweep/trial-failure.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatasetError } from '../../src/data/dataset.js';
import { PipelineError, StageFailedError } from '../../src/errors.js';
import { classifyFailure } from '../../src/sweep/trial-failure.js';
import { NonFiniteLossError } from '../../src/train/loop.js';

test('config and data errors are input, a non-finite loss is numeric, through stage wrappers; the rest is transient', () => {
  assert.equal(classifyFailure(new StageFailedError('head', new NonFiniteLossError('training loss is NaN'))), 'numeric');
  assert.equal(classifyFailure(new StageFailedError('data', new DatasetError('fashion-mnist: source /x does not exist'))), 'input');
  assert.equal(classifyFailure(new PipelineError('PIPE_SCHEMA', 'bad field')), 'input');
  assert.equal(classifyFailure(new StageFailedError('eval', new PipelineError('PIPE_DATA', 'no val split', 1))), 'input');
  assert.equal(classifyFailure(new PipelineError('PIPE_TRACKING', 'spool in use')), 'transient');
  assert.equal(classifyFailure(new StageFailedError('head', new Error('ECONNRESET'))), 'transient');
  assert.equal(classifyFailure('a string'), 'transient');
});
