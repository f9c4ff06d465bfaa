/**
 * The resolved config as MLflow params: nested keys flattened to dotted paths
 * (`stages.finetune.with.optimizer.lr`), lists and empty objects as JSON. Each key maps to one
 * leaf of the config, so a run never logs one key twice with different values.
 */

/** Flattens `value` into `out` under `prefix`. */
export function flattenParams(value: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) flattenParams(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return out;
}
