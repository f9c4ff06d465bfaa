/**
 * MLflow's naming rules and value limits, shared by both stores (mlflow/utils/validation.py
 * `_validate_param_name`/`path_not_unique`, measured in ../shared/mlflow/CONTRACT.md).
 */

/** Longest param value MLflow keeps; longer ones are truncated (with a warning), as MLflow does. */
export const MAX_PARAM_VALUE_LENGTH = 6000;
/** Longest run tag value MLflow keeps; longer ones are truncated (with a warning). */
export const MAX_TAG_VALUE_LENGTH = 8000;

const KEY_CHARS = /^[/\p{L}\p{N}_.\- :]*$/u;

/**
 * Throws unless `key` is a valid MLflow param/metric/tag name: at most 250 characters of
 * letters, digits, `_`, `-`, `.`, space, `:` and `/`, and usable as a relative file path
 * that does not normalise to another name (no empty, `.` or `..` segments, no leading `..`,
 * no leading, trailing or doubled `/`).
 */
export function validateKey(key: string, kind = 'key'): void {
  const segs = key.split('/');
  if (key.length === 0 || key.length > 250 || !KEY_CHARS.test(key) || key.startsWith('..') ||
      segs.some((s) => s === '' || s === '.' || s === '..')) {
    throw new Error(`Invalid ${kind} name: '${key}'. Names may only contain alphanumerics, _, -, ., spaces, : and /, ` +
      'at most 250 characters, forming a relative path without empty, "." or ".." segments.');
  }
}
