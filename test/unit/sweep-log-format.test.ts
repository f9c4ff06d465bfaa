/**
 * `--log-format json` with a sweep (a `sweep:` block, `--sweep`, or `--queue`): refused with one
 * line and exit 2 before anything is written; it used to be ignored (the sweep's human lines on
 * stdout, where a script expected JSON). A single run keeps its JSON stream (events.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { runCli } from '../utils.js';

const PIPELINE = `name: s
stages:
  data: { kind: download, with: { dataset: fashion-mnist, source: ./nowhere, subset: { train: 64, test: 32 } } }
`;
const REFUSED = "pipe: --log-format json streams one run's events; a sweep runs each trial in its own process (its output in runs/<sweep>/logs/): run a trial on its own with --set for JSON, or leave out --log-format\n";

describe('pipe run --log-format json on a sweep', () => {
  const cases: Array<[string, Record<string, string>, string[]]> = [
    ['a sweep: block', { 'p.yaml': `${PIPELINE}sweep:\n  stages.data.with.subset.train: [64, 96]\n` }, []],
    ['--sweep', { 'p.yaml': PIPELINE }, ['--sweep', 'stages.data.with.subset.train=64,96']],
    ['--queue', { 'p.yaml': `${PIPELINE}sweep:\n  stages.data.with.subset.train: [64, 96]\n` }, ['--queue', 'redis://127.0.0.1:1/0']],
  ];
  for (const [what, files, args] of cases) {
    it(`${what}: exit 2, one line saying why and what to do, nothing on stdout, no runs folder`, async () => {
      const r = await runCli(files, ['run', 'p.yaml', '--log-format', 'json', ...args], { PIPE_CACHE: '/nonexistent-pipe-cache' });
      assert.equal(r.exitCode, 2, r.stdout + r.stderr);
      assert.equal(r.stderr, REFUSED);
      assert.equal(r.stdout, '');
      assert.equal(existsSync(join(r.root, 'runs')), false);
    });
  }
});
