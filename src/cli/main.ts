/**
 * `pipe` command line: argument parsing only. Each command calls one API function and turns its
 * result into an exit code: 0 ok, 1 a stage failed, 2 bad input or usage, 130 interrupted.
 * Anchor: DVC `commands/repro.py` -> `repo/reproduce.py`.
 */
import { Command, CommanderError } from 'commander';
import { loadPipeline } from '../config/load.js';
import { compileDag } from '../dag/compile.js';
import { PipelineError } from '../errors.js';
import { runPipeline, TOOL_VERSION } from '../runner/run.js';
import { stageDefinition } from '../../stages/index.js';
import type { EvalReport } from '../../stages/evaluate.js';

function printError(e: unknown): number {
  if (e instanceof PipelineError) {
    process.stderr.write(`pipe: ${e.message}\n`);
    return e.exitCode;
  }
  process.stderr.write(`pipe: internal error (please report it): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 1;
}

async function cmdRun(file: string, opts: { plain?: boolean }): Promise<number> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(`\npipe: ${sig}: stopping after the current batch (again to quit now)\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const r = await runPipeline(file, { plain: opts.plain, signal: controller.signal });
    const evalOut = [...r.outputs.values()].find((v): v is EvalReport => typeof v === 'object' && v !== null && 'test_accuracy' in v && 'images' in v);
    const lines = [
      '',
      evalOut ? `test accuracy: ${(100 * evalOut.test_accuracy).toFixed(2)}% (loss ${evalOut.test_loss.toFixed(4)}, ${evalOut.images} images, best epoch ${evalOut.best_epoch})` : undefined,
      `run: ${r.runId}  outputs: ${r.runDir}`,
      `MLflow store: ${r.store}  (browse: mlflow server --backend-store-uri ${r.store})`,
    ];
    process.stdout.write(`${lines.filter((l) => l !== undefined).join('\n')}\n`);
    return 0;
  } catch (e) {
    return printError(e);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function cmdValidate(file: string): Promise<number> {
  try {
    const { config, source } = await loadPipeline(file);
    const dag = compileDag(config, source);
    process.stdout.write(`'${file}' is valid: ${dag.order.length} stages (${dag.order.join(' -> ')})\n`);
    return 0;
  } catch (e) {
    return printError(e);
  }
}

async function cmdPlan(file: string): Promise<number> {
  try {
    const { config, source } = await loadPipeline(file);
    const dag = compileDag(config, source);
    process.stdout.write(`plan for '${file}' (${config.name}), stages in order:\n`);
    dag.order.forEach((name, i) => {
      const n = dag.nodes.get(name)!;
      const needs = n.needs.length ? ` <- ${n.needs.join(', ')}` : '';
      process.stdout.write(`  ${i + 1}. ${name} [${n.config.kind}]${needs}: run (no cache yet): ${stageDefinition(n.config.kind).summary}\n`);
    });
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
    .option('--plain', 'line-per-event output even on a terminal')
    .action(async (file: string, opts: { plain?: boolean }) => void (code = await cmdRun(file, opts)));
  program
    .command('validate')
    .description('parse, schema-check and compile a pipeline file; exit 0 or 2')
    .argument('<file>', 'pipeline YAML file')
    .action(async (file: string) => void (code = await cmdValidate(file)));
  program
    .command('plan')
    .description('the stages in DAG order')
    .argument('<file>', 'pipeline YAML file')
    .action(async (file: string) => void (code = await cmdPlan(file)));
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  return code;
}
