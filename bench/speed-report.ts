/** The result file of bench/speed.ts and its markdown table. */
import type { ChildResult } from './speed-child.js';

/** PyTorch's figures for one model at one thread count (images/s per repeat). */
export interface TorchResult {
  model: string;
  threads: number;
  train: number[];
  infer: number[];
  /** 1-minute load average when the measurement started. */
  loadavg?: number;
}

/** bench/results/speed.json. */
export interface SpeedReport {
  date: string;
  command: string;
  node: string;
  tfjs: string;
  /** PyTorch version, null when it was not run. */
  torch: string | null;
  cpu: string;
  cores: number;
  batch: number;
  /** Input side, pixels (square, 3 channels). */
  size: number;
  repeats: number;
  /** 1-minute load average before and after the run (other processes share the machine). */
  loadavgBefore: number;
  loadavgAfter: number;
  /** Wall time of the whole benchmark, s. */
  seconds: number;
  pipe: Array<ChildResult & { loadavg?: number }>;
  torch_results: TorchResult[];
  /** Per model: pipe as shipped (the default runtime) / PyTorch with 2 threads, and the goals. */
  models?: Record<string, ModelRatios>;
}

/** Issue 21's goals, ratios to PyTorch with 2 threads in the same run: training per model, inference for all. */
export const GOALS: Record<string, { train: number; infer: number }> = {
  mini_resnet: { train: 0.8, infer: 1.0 },
  resnet18: { train: 1.2, infer: 1.0 },
  resnet50: { train: 1.0, infer: 1.0 },
  cifar_resnet18: { train: 1.0, infer: 1.0 },
};

/** One model's ratios (medians of the repeats) of pipe as shipped to PyTorch with 2 threads; null when either is missing. */
export interface ModelRatios {
  train_vs_torch_2_threads: number | null;
  infer_vs_torch_2_threads: number | null;
  goal_train: number | null;
  goal_infer: number | null;
  /** True when both goals are met; null without goals or figures. */
  goals_met: boolean | null;
}

/** The ratios of pipe's default runtime (`wasm`: the native route when the addon is built) to PyTorch on 2 threads. */
export function modelRatios(r: SpeedReport): Record<string, ModelRatios> {
  const out: Record<string, ModelRatios> = {};
  for (const model of new Set(r.pipe.map((p) => p.model))) {
    const p = r.pipe.find((x) => x.model === model && x.runtime === 'wasm');
    const t = r.torch_results.find((x) => x.model === model && x.threads === 2);
    const rt = (a: number[] | undefined, b: number[] | undefined): number | null => (a?.length && b?.length ? Number((median(a) / median(b)).toFixed(3)) : null);
    const train = rt(p?.train, t?.train), infer = rt(p?.infer, t?.infer), goal = GOALS[model];
    out[model] = {
      train_vs_torch_2_threads: train, infer_vs_torch_2_threads: infer, goal_train: goal?.train ?? null, goal_infer: goal?.infer ?? null,
      goals_met: goal && train !== null && infer !== null ? train >= goal.train && infer >= goal.infer : null,
    };
  }
  return out;
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const load = (l: number | undefined): string => (l === undefined ? '-' : l.toFixed(2));
const fig = (xs: number[]): string => xs.map((v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1))).join(' / ');
const ratio = (a: number[], b: number[] | undefined): string => (b?.length ? (median(a) / median(b)).toPrecision(2) : '-');

/** A pipe row's runtime: backend, kernel route, optimizer. */
function label(p: ChildResult): string {
  if (p.backend !== 'wasm') return p.backend;
  const route = p.route === 'native' ? 'wasm + native addon' : 'wasm, wasm kernels only';
  return p.optimizer === 'fused-adam' ? `${route} + fused Adam` : route;
}

/** The two tables: absolute images/s (every repeat) and pipe/PyTorch ratios of the medians. */
export function markdown(r: SpeedReport): string {
  const models = [...new Set([...r.pipe.map((p) => p.model), ...r.torch_results.map((t) => t.model)])];
  const torchOf = (model: string, threads: number): TorchResult | undefined => r.torch_results.find((t) => t.model === model && t.threads === threads);
  const lines: string[] = [
    `Measured ${r.date.slice(0, 10)} on ${r.cores} cores (${r.cpu}); node ${r.node}, tfjs ${r.tfjs}, PyTorch ${r.torch ?? 'not run'}.`,
    `${r.size}x${r.size}x3 images, batch ${r.batch}, 10 classes, Adam; each figure measured ${r.repeats} times after warm-up steps.`,
    `Load average (1 min) ${r.loadavgBefore.toFixed(2)} before, ${r.loadavgAfter.toFixed(2)} after (column \`load\`: when each row started; the machine is shared); ${r.seconds.toFixed(0)} s in all. Command: \`${r.command}\`.`,
    '',
    '| model | runtime | train images/s | inference images/s | load |',
    '|---|---|---|---|---|',
  ];
  for (const m of models) {
    for (const p of r.pipe.filter((x) => x.model === m)) lines.push(`| ${m} | pipe ${label(p)}${p.batch !== r.batch ? ` (batch ${p.batch})` : ''} | ${fig(p.train)} | ${fig(p.infer)} | ${load(p.loadavg)} |`);
    for (const threads of [1, 2]) {
      const t = torchOf(m, threads);
      if (t) lines.push(`| ${m} | PyTorch ${threads} thread${threads > 1 ? 's' : ''} | ${fig(t.train)} | ${fig(t.infer)} | ${load(t.loadavg)} |`);
    }
  }
  lines.push('', 'Ratios pipe / PyTorch (medians of the repeats; 1.0 = as fast as PyTorch):', '');
  lines.push('| model | pipe runtime | train vs 1 thread | train vs 2 threads | inference vs 1 thread | inference vs 2 threads |', '|---|---|---|---|---|---|');
  for (const p of r.pipe) {
    const t1 = torchOf(p.model, 1), t2 = torchOf(p.model, 2);
    lines.push(`| ${p.model} | ${label(p)} | ${ratio(p.train, t1?.train)} | ${ratio(p.train, t2?.train)} | ${ratio(p.infer, t1?.infer)} | ${ratio(p.infer, t2?.infer)} |`);
  }
  const ratios = r.models ?? modelRatios(r);
  lines.push('', 'Goals (issue 21), pipe as shipped vs PyTorch with 2 threads, this run:', '');
  lines.push('| model | train ratio | goal | inference ratio | goal | met |', '|---|---|---|---|---|---|');
  const f = (v: number | null): string => (v === null ? '-' : v.toFixed(2));
  for (const [m, g] of Object.entries(ratios)) {
    lines.push(`| ${m} | ${f(g.train_vs_torch_2_threads)} | >= ${f(g.goal_train)} | ${f(g.infer_vs_torch_2_threads)} | >= ${f(g.goal_infer)} | ${g.goals_met === null ? '-' : g.goals_met ? 'yes' : '**missed**'} |`);
  }
  return `${lines.join('\n')}\n`;
}
