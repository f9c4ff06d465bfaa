#!/usr/bin/env bash
# The main job, from a fresh machine: install the data (Debian's dataset-fashion-mnist when
# apt-get is there) and the npm packages, then run the quickstart pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "quickstart: installing Debian's dataset-fashion-mnist (the real Fashion-MNIST files)"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist; }; then
    echo "quickstart: could not install dataset-fashion-mnist; pipe will try the official download URLs"
  fi
fi
[ -x node_modules/.bin/tsc ] || npm ci --no-audit --no-fund
[ -f dist/src/cli/main.js ] || npm run build
exec node bin/pipe.js run pipelines/fashion-mnist-quickstart.yaml "$@"
