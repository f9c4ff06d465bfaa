/**
 * The golden table of bad pipeline files (DVC's tests/func/utils/test_strict_yaml.py style):
 * each test/fixtures/config-errors/<case>.yaml is checked through the real CLI,
 * `pipe validate <case>.yaml [args]` with the fixtures folder as working directory, which must
 * exit 2 and print exactly <case>.expected.txt on stderr (nothing on stdout). A first line
 * `# args: ...` adds command-line arguments (the `--set` cases).
 *
 * After a deliberate change of wording, regenerate the expectations and read the diff:
 *   UPDATE_GOLDENS=1 node --test dist/test/unit/config-golden.test.js
 * CI never sets UPDATE_GOLDENS: a missing or different expectation fails the test.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, runCliIn } from '../utils.js';

const DIR = join(REPO, 'test', 'fixtures', 'config-errors');
const UPDATE = process.env['UPDATE_GOLDENS'] === '1';
const cases = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -'.yaml'.length)).sort();

/** Arguments after `pipe validate <file>`, from a first line `# args: ...`. */
function argsOf(yaml: string): string[] {
  const m = /^# args: (.*)$/m.exec(yaml.split('\n')[0] ?? '');
  return m ? m[1]!.trim().split(/\s+/) : [];
}

it('the table has at least 30 cases and no expectation without its case', () => {
  assert.ok(cases.length >= 30, `${cases.length} cases`);
  const orphans = readdirSync(DIR).filter((f) => f.endsWith('.expected.txt') && !cases.includes(f.slice(0, -'.expected.txt'.length)));
  assert.deepEqual(orphans, []);
});

describe('pipe validate on bad input: exit 2 and the exact report', { concurrency: 2 }, () => {
  for (const name of cases) {
    it(name, async () => {
      const yaml = readFileSync(join(DIR, `${name}.yaml`), 'utf8');
      const r = await runCliIn(DIR, ['validate', `${name}.yaml`, ...argsOf(yaml)]);
      const expectedPath = join(DIR, `${name}.expected.txt`);
      if (UPDATE) writeFileSync(expectedPath, r.stderr);
      assert.ok(existsSync(expectedPath), `${expectedPath} is missing (UPDATE_GOLDENS=1 writes it; then review it)`);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, readFileSync(expectedPath, 'utf8'));
      assert.equal(r.exitCode, 2);
    });
  }
});
