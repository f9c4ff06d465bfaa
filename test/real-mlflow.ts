/**
 * Whether the real-MLflow suites can run, decided once for every test file. `.ci/run` starts a
 * real MLflow server (an installed `mlflow`, else the workplace bundle ../shared/mlflow-server)
 * and exports:
 * - `PIPE_REAL_MLFLOW_URI`: the server, e.g. http://127.0.0.1:5055;
 * - `PIPE_MLFLOW_PYTHON` / `PIPE_MLFLOW_PYTHONPATH`: a Python that can `import mlflow` (for
 *   MLflow's own client reading a local file store), PYTHONPATH empty when mlflow is installed;
 * - or, where no MLflow can be had at all, `PIPE_REAL_MLFLOW_UNAVAILABLE` with the reason.
 *
 * The suites then run, or skip with that one reason. Under `CI=true` with none of these set, the
 * answer is a skip reason that test/skip-report.ts turns into a failed run: CI must say why.
 */

/** What a real-server suite needs, or why it cannot run. */
export type RealMlflow =
  | { uri: string; python: string; pythonPath: string; skip: false }
  | { skip: string };

/** The real MLflow server for this run of the tests, or the reason there is none. */
export function realMlflow(): RealMlflow {
  const uri = process.env['PIPE_REAL_MLFLOW_URI'];
  if (uri) return { uri, python: process.env['PIPE_MLFLOW_PYTHON'] ?? '/usr/bin/python3', pythonPath: process.env['PIPE_MLFLOW_PYTHONPATH'] ?? '', skip: false };
  const why = process.env['PIPE_REAL_MLFLOW_UNAVAILABLE'];
  if (why) return { skip: `no real MLflow server: ${why}` };
  return { skip: 'no real MLflow server: set PIPE_REAL_MLFLOW_URI (bash .ci/run starts one)' };
}
