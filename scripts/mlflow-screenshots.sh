#!/usr/bin/env bash
# Screenshots of what a user sees of a pipe run in the MLflow web UI, with headless Chromium
# (Debian's `chromium`), to check the UI layout by eye (docs/tracking.md, "How a run looks").
#
#   bash scripts/mlflow-screenshots.sh URL EXPERIMENT [OUTDIR]
#
# URL: the MLflow server (e.g. http://127.0.0.1:5000); EXPERIMENT: an experiment name; the newest
# run in it is shown. Writes OUTDIR (default ./mlflow-screenshots) /experiment.png, overview.png,
# model-metrics.png, system-metrics.png, artifacts-report.png and prints their paths. The UI is a
# single-page app that loads its data after the page: --virtual-time-budget lets it finish.
set -euo pipefail
url=${1:?usage: mlflow-screenshots.sh URL EXPERIMENT [OUTDIR]}
url=${url%/}
experiment=${2:?usage: mlflow-screenshots.sh URL EXPERIMENT [OUTDIR]}
out=${3:-mlflow-screenshots}
command -v chromium >/dev/null || { echo "mlflow-screenshots: needs chromium (apt-get install chromium)" >&2; exit 2; }
mkdir -p "$out"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
enc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$experiment")
exp_id=$(curl -fsS "$url/api/2.0/mlflow/experiments/get-by-name?experiment_name=$enc" | json 'd["experiment"]["experiment_id"]')
run_id=$(curl -fsS -X POST -H 'Content-Type: application/json' \
  -d "{\"experiment_ids\": [\"$exp_id\"], \"max_results\": 1, \"order_by\": [\"attributes.start_time DESC\"]}" \
  "$url/api/2.0/mlflow/runs/search" | json 'd["runs"][0]["info"]["run_id"]')

shot() { # name, page (after #/)
  local profile
  profile=$(mktemp -d)
  chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --user-data-dir="$profile" --virtual-time-budget=15000 \
    --window-size=1400,1000 --screenshot="$out/$1.png" "$url/#/$2" >/dev/null 2>&1
  rm -rf "$profile"
  echo "$out/$1.png"
}
shot experiment "experiments/$exp_id"
shot overview "experiments/$exp_id/runs/$run_id"
shot model-metrics "experiments/$exp_id/runs/$run_id/model-metrics"
shot system-metrics "experiments/$exp_id/runs/$run_id/system-metrics"
shot artifacts-report "experiments/$exp_id/runs/$run_id/artifactPath/report.html"
