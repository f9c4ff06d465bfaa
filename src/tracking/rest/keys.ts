/**
 * Makes param, metric and tag keys acceptable to MLflow and keeps values within its limits.
 * MLflow's rules (mlflow/utils/validation.py `_validate_param_name`/`path_not_unique`, measured
 * in ../shared/mlflow/CONTRACT.md): at most 250 characters of letters, digits, `_ - . / : `
 * and space; the key must be a relative path that `posixpath.normpath` leaves unchanged (no
 * empty, `.` or `..` segment, no leading `..`, no leading or trailing `/`). Param values over
 * 6000 and tag values over 8000 characters are cut by the server silently, so we cut them
 * ourselves and say so.
 */
import { createHash } from 'node:crypto';
import { MAX_PARAM_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH, validateKey } from '../names.js';

export { MAX_PARAM_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH };

/** Longest key MLflow accepts. */
export const MAX_KEY_LENGTH = 250;

const BAD_CHAR = /[^/\p{L}\p{N}_.\- :]/gu;

/** Rewrites `key` into a valid MLflow name: bad characters -> `_`, `//` -> `/`, `.`/`..` segments -> `_`/`__`, leading `..` -> `_.`, at most 250 characters. */
export function sanitizeKey(key: string): string {
  let k = key.replace(BAD_CHAR, '_').replace(/\/{2,}/g, '/').replace(/^\/+|\/+$/g, '');
  k = k.slice(0, MAX_KEY_LENGTH).replace(/\/+$/, '');
  k = k.split('/').map((s) => (s === '.' ? '_' : s === '..' ? '__' : s)).join('/');
  if (k.startsWith('..')) k = `_${k.slice(1)}`;
  return k === '' ? '_' : k;
}

/**
 * Maps caller keys to MLflow keys, one-to-one for the life of a run: two different keys that
 * sanitise to the same name get a `_<8 hex of sha256(original)>` suffix, so no run ever logs one
 * MLflow key for two different things (params are immutable).
 */
export class KeyMapper {
  private readonly toMlflow = new Map<string, string>();
  private readonly owner = new Map<string, string>();
  /** Keys that had to change, original -> MLflow key. */
  readonly renamed = new Map<string, string>();

  /** The MLflow key for `key` (stable across calls). */
  map(key: string): string {
    const known = this.toMlflow.get(key);
    if (known !== undefined) return known;
    let k = sanitizeKey(key);
    const taken = this.owner.get(k);
    if (taken !== undefined && taken !== key) {
      const suffix = `_${createHash('sha256').update(key).digest('hex').slice(0, 8)}`;
      k = `${k.slice(0, MAX_KEY_LENGTH - suffix.length)}${suffix}`;
    }
    validateKey(k);
    this.toMlflow.set(key, k);
    this.owner.set(k, key);
    if (k !== key) this.renamed.set(key, k);
    return k;
  }
}

/** `value` cut to `max` characters (whole UTF-16 surrogate pairs kept), and whether it was cut. */
export function truncateValue(value: string, max: number): { value: string; truncated: boolean } {
  if (value.length <= max) return { value, truncated: false };
  let cut = value.slice(0, max);
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return { value: cut, truncated: true };
}

/** Joins `items` into a tag value of at most 8000 characters, ending in `...` when cut. */
export function listTag(items: string[]): string {
  const s = items.join(', ');
  return s.length <= MAX_TAG_VALUE_LENGTH ? s : `${s.slice(0, MAX_TAG_VALUE_LENGTH - 3)}...`;
}
