/**
 * A light reader of run headers in a local MLflow file store (the layout FileStore writes):
 * meta.yaml and a few named tags, without reading metric histories (which can be large), so
 * `pipe runs` stays quick over many runs.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { RUN_STATUS_CODES, type RunStatus } from '../tracking/filestore.js';

/** What `pipe runs` shows of an MLflow run. */
export interface RunHeader {
  status: RunStatus;
  runName: string;
  /** ms since the Unix epoch. */
  startTime: number;
  /** ms since the Unix epoch; undefined while RUNNING. */
  endTime?: number;
  /** The requested tags that are set. */
  tags: Record<string, string>;
}

const STATUS_BY_CODE = new Map(Object.entries(RUN_STATUS_CODES).map(([k, v]) => [v, k as RunStatus]));

/** Reads run headers from the file store at `root`; experiment folders are listed once. */
export class RunHeaderReader {
  private experiments: Promise<string[]> | undefined;

  constructor(private readonly root: string) {}

  /**
   * The header of MLflow run `runId` with the tags named in `tags`, or undefined when the run
   * is not in this store (or its meta.yaml cannot be read).
   */
  async read(runId: string, tags: readonly string[] = []): Promise<RunHeader | undefined> {
    if (!/^[0-9a-f]{32}$/.test(runId)) return undefined;
    this.experiments ??= readdir(this.root, { withFileTypes: true }).then(
      (es) => es.filter((e) => e.isDirectory() && e.name !== '.trash' && e.name !== 'models').map((e) => join(this.root, e.name)),
      () => [],
    );
    for (const exp of await this.experiments) {
      const dir = join(exp, runId);
      const text = await readFile(join(dir, 'meta.yaml'), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      const meta = parse(text, { version: '1.1' }) as Record<string, unknown>;
      const found: Record<string, string> = {};
      for (const t of tags) {
        const v = await readFile(join(dir, 'tags', t), 'utf8').catch(() => undefined);
        if (v !== undefined) found[t] = v;
      }
      return {
        status: STATUS_BY_CODE.get(Number(meta['status'])) ?? 'RUNNING',
        runName: String(meta['run_name'] ?? ''),
        startTime: Number(meta['start_time']),
        ...(typeof meta['end_time'] === 'number' ? { endTime: meta['end_time'] } : {}),
        tags: found,
      };
    }
    return undefined;
  }
}
