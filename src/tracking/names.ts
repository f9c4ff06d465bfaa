/**
 * MLflow's naming rules and value limits, shared by both stores (mlflow/utils/validation.py
 * `_validate_param_name`/`path_not_unique`, measured in ../shared/mlflow/CONTRACT.md).
 */

/** Longest param value MLflow keeps; longer ones are truncated (with a warning), as MLflow does. */
export const MAX_PARAM_VALUE_LENGTH = 6000;
/** Longest run tag value MLflow keeps; longer ones are truncated (with a warning). */
export const MAX_TAG_VALUE_LENGTH = 8000;

/** Longest param, metric or tag name MLflow accepts, in characters. */
export const MAX_KEY_LENGTH = 250;
/** Longest experiment name MLflow accepts, in characters. */
export const MAX_EXPERIMENT_NAME_LENGTH = 500;

const KEY_CHARS = /^[/\p{L}\p{N}_.\- :]*$/u;

/** True when `key` is a valid MLflow param/metric/tag name (see validateKey). */
export function isValidKey(key: string): boolean {
  const segs = key.split('/');
  return !(key.length === 0 || key.length > MAX_KEY_LENGTH || !KEY_CHARS.test(key) || key.startsWith('..') ||
    segs.some((s) => s === '' || s === '.' || s === '..'));
}

/**
 * Throws unless `key` is a valid MLflow param/metric/tag name: at most 250 characters of
 * letters, digits, `_`, `-`, `.`, space, `:` and `/`, and usable as a relative file path
 * that does not normalise to another name (no empty, `.` or `..` segments, no leading `..`,
 * no leading, trailing or doubled `/`).
 */
export function validateKey(key: string, kind = 'key'): void {
  if (!isValidKey(key)) {
    throw new Error(`Invalid ${kind} name: '${key}'. Names may only contain alphanumerics, _, -, ., spaces, : and /, ` +
      'at most 250 characters, forming a relative path without empty, "." or ".." segments.');
  }
}
