/**
 * `pipe` command line: argument parsing only. Each command calls one API function and turns its
 * result into an exit code: 0 ok, 1 a stage failed, 2 bad input or usage, 130 interrupted.
 * Anchor: DVC `commands/repro.py` -> `repo/reproduce.py`.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { parseOverride, type Override } from '../config/overrides.js';
import { PipelineError } from '../errors.js';
import { isServerUri } from '../tracking/uri.js';
import { onInterrupt } from './interrupts.js';
import type { TrialCliOpts } from './sweep.js';
import { TOOL_VERSION } from '../version.js';
import { browseCommand } from '../tracking/layout.js';

// NOTE: command modules are imported when their command runs: the runner pulls in TensorFlow.js
// and the whole model zoo (~1 s), which `pipe --help` or `pipe runs` should not pay for.
const runner = () => import('../runner/run.js');
/** The stage table the runner runs (stages/ are adapters the CLI hands to the runner). */
const stageTable = async () => (await import('../../stages/index.js')).stageKinds;

/** Options shared by run, validate and plan. */
interface ConfigOpts {
  set?: string[];
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/**
 * Commander's parser of `pipe predict --top-k`: a whole number >= 1 in decimal digits.
 * @throws InvalidArgumentError (commander prints `error: option '--top-k <n>' argument 'abc' is
 *   invalid. ...`; exit 2) for anything else: `abc`, `0`, `-1`, `1.5`, `1e3`, an empty string.
 */
function parseTopK(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('expected a whole number >= 1.');
  return Number(v);
}
const overridesOf = (o: ConfigOpts): Override[] => (o.set ?? []).map(parseOverride);

function printError(e: unknown): number {
  if (e instanceof PipelineError) {
    process.stderr.write(`pipe: ${e.message}\n`);
    return e.exitCode;
  }
  // A file-system refusal outside any stage (a read-only or missing runs/ folder, a full disk):
  // the environment, not a bug, so no stack trace.
  const sys = e as NodeJS.ErrnoException;
  if (sys instanceof Error && typeof sys.code === 'string' && typeof sys.syscall === 'string' && ['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'ENOTDIR', 'EISDIR', 'ENOENT', 'EEXIST'].includes(sys.code)) {
    const what = { EACCES: 'permission denied', EPERM: 'not permitted', EROFS: 'read-only file system', ENOSPC: 'no space left on the device', ENOTDIR: 'a path component is not a folder', EISDIR: 'it is a folder', ENOENT: 'no such file or folder', EEXIST: 'it already exists' }[sys.code];
    process.stderr.write(`pipe: cannot ${sys.syscall}${sys.path ? ` ${sys.path}` : ''}: ${what}; check the runs folder (PIPE_RUNS_DIR or ./runs), PIPE_CACHE and MLFLOW_TRACKING_URI\n`);
    return sys.code === 'ENOSPC' ? 1 : 2; // a full disk is a fault (exit 1, as in a stage), the rest is the user's setup (2)
  }
  process.stderr.write(`pipe: internal error (please report it): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 1;
}

interface RunCliOpts extends ConfigOpts {
  plain?: boolean;
  quiet?: boolean;
  logFormat?: string;
  force?: boolean;
  from?: string;
  resume?: boolean | string;
  jobs?: string;
  keepGoing?: boolean;
  sweep?: string[];
  parallel?: string;
  queue?: string | boolean;
  attempts?: string;
}

async function cmdRun(file: string, opts: RunCliOpts): Promise<number> {
  const controller = new AbortController();
  const offInterrupt = onInterrupt(controller, (sig) => `\npipe: ${sig}: stopping after the current batch (again to quit now)\n`);
  try {
    if (opts.queue !== undefined && opts.logFormat === 'json') throw new PipelineError('PIPE_USAGE', (await import('./sweep.js')).SWEEP_JSON_REFUSED);
    if (opts.queue !== undefined) return await (await import('./queue.js')).runQueueCli(file, { ...opts, queue: opts.queue }, controller.signal);
    const { runSweepCli } = await import('./sweep.js');
    const swept = await runSweepCli(file, opts, controller.signal);
    if (swept !== undefined) return swept;
    const jobs = opts.jobs === undefined ? 1 : Number(opts.jobs);
    if (!Number.isInteger(jobs) || jobs < 1) throw new PipelineError('PIPE_USAGE', `--jobs ${opts.jobs}: expected a whole number >= 1`);
    const logFormat = opts.logFormat ?? 'text';
    if (logFormat !== 'text' && logFormat !== 'json') throw new PipelineError('PIPE_USAGE', `--log-format ${logFormat}: expected text or json`);
    const { runPipeline, chainLines } = await runner();
    const r = await runPipeline(file, {
      stages: await stageTable(), overrides: overridesOf(opts), plain: opts.plain, quiet: opts.quiet, logFormat, force: opts.force, from: opts.from, resume: opts.resume,
      jobs, keepGoing: opts.keepGoing, signal: controller.signal,
    });
    const reused = r.plan.filter((e) => e.decision === 'skip').map((e) => e.name);
    // Several training chains: one line per chain, with its evaluations and best model.
    const several = r.chains.length > 1;
    const lines = [
      '',
      ...chainLines(r.chains),
      reused.length ? `reused from the stage cache: ${reused.join(', ')}` : undefined,
      `run: ${r.runId}  outputs: ${r.runDir}`,
      r.reportHtml !== undefined ? `report: ${r.reportHtml}` : undefined,
      r.bestModel !== undefined && !several ? `best model: ${r.bestModel}` : undefined,
      isServerUri(r.store) ? `MLflow server: ${r.store}` : `MLflow store: ${r.store}  (browse: ${browseCommand(r.store)})`,
    ];
    if (logFormat !== 'json') process.stdout.write(`${lines.filter((l) => l !== undefined).join('\n')}\n`);
    return 0;
  } catch (e) {
    return printError(e);
  } finally {
    offInterrupt();
  }
}

async function cmdValidate(file: string, opts: ConfigOpts & { sweep?: string[] }): Promise<number> {
  try {
    process.stdout.write(await (await import('./validate.js')).validateReport(file, opts));
    return 0;
  } catch (e) {
    return printError(e);
  }
}

async function cmdPlan(file: string, opts: ConfigOpts & { sweep?: string[]; format?: string; force?: boolean; from?: string }): Promise<number> {
  try {
    process.stdout.write(await (await import('./validate.js')).planReport(file, opts));
    return 0;
  } catch (e) {
    return printError(e);
  }
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = new Command()
    .name('pipe')
    .description('Declarative training runner for image classifiers (YAML pipeline -> DAG of stages, tracked in MLflow)')
    .version(TOOL_VERSION)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program
    .command('run')
    .description('run a pipeline file')
    .argument('<file>', 'pipeline YAML file')
    .option('--set <path=value>', 'override a config value (repeatable), e.g. --set stages.head.with.epochs=3', collect)
    .option('--force', 'run every stage, even unchanged ones')
    .option('--from <stage>', 'run this stage and everything downstream of it')
    .option('--resume [run-id]', 'continue the newest unfinished run of this pipeline (or the given run)')
    .option('-j, --jobs <n>', 'stages to run at once (independent branches)', '1')
    .option('--keep-going', 'after a failure, go on with the stages that do not depend on it')
    .option('--plain', 'line-per-event output even on a terminal (the default when stdout is not one)')
    .option('-q, --quiet', 'no progress output; only the summary at the end (and errors)')
    .option('--log-format <format>', "text (default) or json: the run's events as one JSON object per line on stdout, for scripts")
    .option('--sweep <path=v1,v2>', 'sweep a config value over a list (repeatable; the grid of all combinations), e.g. --sweep stages.model.with.arch=resnet18,resnet50', collect)
    .option('--parallel <n>', 'sweep trials to run at once, each in its own process (default 1)')
    .option('--queue [url]', 'put the sweep trials on a Redis queue (redis://[user@]host:port/db or rediss://; default $PIPE_QUEUE_URL, password from $PIPE_QUEUE_PASSWORD_FILE or $PIPE_QUEUE_PASSWORD) for `pipe worker`s; needs an http(s) MLFLOW_TRACKING_URI')
    .option('--attempts <n>', 'with --queue: runs of a trial before it fails for good (default 3)')
    .action(async (file: string, opts: RunCliOpts) => void (code = await cmdRun(file, opts)));
  program
    .command('_trial', { hidden: true })
    .description('one trial of a sweep (started by `pipe run` for sweeps)')
    .argument('<file>', 'pipeline YAML file')
    .requiredOption('--run-id <id>', 'run folder id under runs/')
    .requiredOption('--run-name <name>', 'MLflow run name')
    .option('--set <path=value>', 'override a config value (repeatable)', collect)
    .option('--tag <key=value>', 'extra MLflow run tag (repeatable)', collect)
    .option('--resume', 'continue the run folder --run-id')
    .option('--force', 'run every stage, even unchanged ones')
    .option('--from <stage>', 'run this stage and everything downstream of it')
    .option('-j, --jobs <n>', 'stages to run at once')
    .option('--plain', 'line-per-event output')
    .action(async (file: string, opts: TrialCliOpts) => void (code = await (await import('./sweep.js')).cmdTrial(file, opts)));
  program
    .command('worker')
    .description('run sweep trials from a Redis queue (see `pipe run --queue`), logging to the MLflow server of MLFLOW_TRACKING_URI')
    .option('--queue <url>', 'redis://[user@]host:port/db or rediss://... (default $PIPE_QUEUE_URL)')
    .option('--concurrency <n>', 'trials at once, each in its own process (default 1)')
    .option('--backend <name>', 'engine.backend for every trial (default: the pipeline\'s)')
    .option('--name <name>', 'worker name shown in progress and tagged on runs (default <hostname>-<pid>)')
    .action(async (opts: { queue?: string; concurrency?: string; backend?: string; name?: string }) => {
      try {
        code = await (await import('./worker.js')).cmdWorker(opts);
      } catch (e) {
        code = printError(e);
      }
    });
  program
    .command('queue')
    .description('the trial queue: status (counts, sweeps, running and failed trials, workers), drain (remove queued trials), retry-failed (queue failed trials again)')
    .argument('<action>', 'status, drain or retry-failed')
    .option('--queue <url>', 'redis://[user@]host:port/db or rediss://... (default $PIPE_QUEUE_URL)')
    .option('--sweep <id>', 'act on this sweep only (drain and retry-failed need it, or --all)')
    .option('--all', 'drain / retry-failed: act on every sweep on the queue')
    .action(async (action: string, opts: { queue?: string; sweep?: string; all?: boolean }) => {
      try {
        code = await (await import('./queue.js')).cmdQueue(action, opts);
      } catch (e) {
        code = printError(e);
      }
    });
  const runs = program
    .command('runs')
    .description('local runs and sweeps under runs/: id, name, status, best test accuracy, start, duration')
    .option('--json', 'one JSON document on stdout')
    .action(async (opts: { json?: boolean }) => void (code = await (await import('./runs.js')).cmdRuns(opts)));
  runs
    .command('compare')
    .description('comparison table of runs: run ids, sweep ids (all their trials) or MLflow run ids')
    .argument('<ids...>', 'run, sweep or MLflow run ids')
    .option('--format <format>', 'text, md, csv, html or json', 'text')
    .option('--out <dir>', 'also write the tables and charts (PNG + SVG) to this folder')
    .action(async (ids: string[], opts: { format?: string; out?: string }) => void (code = await (await import('./runs.js')).cmdRunsCompare(ids, opts)));
  program
    .command('validate')
    .description('parse, schema-check and compile a pipeline file (and every trial of its sweep); exit 0 or 2')
    .argument('<file>', 'pipeline YAML file')
    .option('--set <path=value>', 'override a config value (repeatable)', collect)
    .option('--sweep <path=v1,v2>', 'check the trials of this sweep too, as `run --sweep` (repeatable)', collect)
    .action(async (file: string, opts: ConfigOpts) => void (code = await cmdValidate(file, opts)));
  program
    .command('plan')
    .description('the stages in DAG order, and for each whether it runs or is reused, and why; data and weights not cached yet are marked')
    .argument('<file>', 'pipeline YAML file')
    .option('--set <path=value>', 'override a config value (repeatable)', collect)
    .option('--sweep <path=v1,v2>', 'check the trials of this sweep too, as `run --sweep` (repeatable)', collect)
    .option('--format <format>', 'text, mermaid, dot or json (one document, for scripts)', 'text')
    .option('--force', 'plan as `run --force`')
    .option('--from <stage>', 'plan as `run --from`')
    .action(async (file: string, opts: ConfigOpts & { format?: string }) => void (code = await cmdPlan(file, opts)));
  program
    .command('models')
    .description('the model zoo: architectures, parameter counts, input sizes, pretrained weights')
    .action(async () => void (code = await (await import('./models.js')).cmdModels()));
  program
    .command('sync')
    .description("replay a run's MLflow spool (records kept while the tracking server was unreachable), or copy every local run to a server (--all --to URL)")
    .argument('[run-dir]', 'the run folder under runs/')
    .option('--all', 'copy every run, sweep and artifact of the local MLflow store to the server given by --to (again: only what is missing)')
    .option('--to <url>', 'the MLflow server to copy to (http(s)://host:port), with --all')
    .option('--from <dir>', 'the local MLflow store to copy (default: runs/mlruns, or MLFLOW_TRACKING_URI when it names a local store)')
    .action(async (runDir: string | undefined, o: { all?: boolean; to?: string; from?: string }) => {
      const sync = await import('./sync.js');
      if (o.all && runDir === undefined) code = await sync.cmdSyncAll(o.to, o.from);
      else if (!o.all && runDir !== undefined && o.to === undefined && o.from === undefined) code = await sync.cmdSync(runDir);
      else {
        process.stderr.write('pipe: sync: give either a run folder (pipe sync runs/<run-id>) or --all --to URL\n');
        code = 2;
      }
    });
  program
    .command('predict')
    .description('top-k classes of image files with a trained model')
    .argument('<model>', 'run folder, run id under runs/, or best-model folder')
    .argument('<images...>', 'image files (PNG, JPEG, WebP, ...)')
    .option('--top-k <n>', 'classes per image (a whole number >= 1)', parseTopK, 5)
    .option('--json', 'one JSON document on stdout')
    .option('--stage <name>', 'the training stage whose best model to use (<run>/<name>/best-model); needed when the run has several training chains')
    .action(async (model: string, images: string[], opts: { json?: boolean; topK?: number; stage?: string }) => void (code = await (await import('./predict.js')).cmdPredict(model, images, opts)));
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  return code;
}
