/**
 * Where the committed test fixtures are: `test/fixtures/` of the repository (this file runs as
 * dist/test/fixtures.js). Every golden, pin list and MLflow example the tests read lives there;
 * no test reads outside the repository (test/fixtures/README.md says where each came from).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** test/fixtures/ in the source tree. */
export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures');

/**
 * The path of a committed fixture, `test/fixtures/<parts...>`.
 * @throws Error naming the path when the fixture is not there (a broken checkout).
 */
export function fixture(...parts: string[]): string {
  const p = join(FIXTURES, ...parts);
  if (!existsSync(p)) throw new Error(`test fixture ${p} is missing (it is committed under test/fixtures/)`);
  return p;
}
