/**
 * Writes a comparison of runs to a folder: comparison.md, comparison.csv, comparison.json,
 * comparison.html (with the charts embedded) and the charts as PNG + SVG.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDurable } from '../fs-durable.js';
import type { ChartFiles } from '../plot/render.js';
import { plotComparison } from './charts.js';
import type { RunSummary } from './collect.js';
import { sortRows, toCsv, toHtml, toMarkdown } from './table.js';

/** Chart titles, in the order plotComparison writes them. */
const TITLES = ['Best test accuracy', 'Training time', 'Test accuracy per epoch'];

/**
 * Writes the comparison of `rows` under `dir` (created). The tables are written even when the
 * charts cannot be rendered (then `warnings` says why).
 * @returns absolute paths of every file written (tables first, then each chart's PNG and SVG).
 */
export async function writeComparison(rows: readonly RunSummary[], dir: string, opts: { title: string; facts?: [string, string][] }): Promise<{ files: string[]; warnings: string[] }> {
  await mkdir(dir, { recursive: true });
  const warnings: string[] = [];
  let charts: ChartFiles[] = [];
  try {
    charts = await plotComparison(rows, dir);
  } catch (e) {
    warnings.push(`comparison charts not drawn: ${(e as Error).message}`);
  }
  const svgs = await Promise.all(charts.map((c) => readFile(c.svg, 'utf8')));
  const files: [string, string][] = [
    ['comparison.md', `# ${opts.title}\n\n${toMarkdown(rows)}`],
    ['comparison.csv', toCsv(rows)],
    ['comparison.json', JSON.stringify(sortRows(rows), null, 2)],
    ['comparison.html', toHtml(rows, { title: opts.title, facts: opts.facts, figures: svgs.map((svg, i) => ({ title: TITLES[i]!, svg })) })],
  ];
  for (const [name, text] of files) await writeDurable(join(dir, name), text);
  return { files: [...files.map(([n]) => join(dir, n)), ...charts.flatMap((c) => [c.png, c.svg])], warnings };
}
