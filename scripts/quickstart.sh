#!/usr/bin/env bash
# The main job, from a fresh machine: install the data (Debian's dataset-fashion-mnist) and what
# the native addon needs (g++, libdnnl-dev: oneDNN 2.x) when apt-get is there, then the npm
# packages (`npm ci` builds the addon), then run the quickstart pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
  need=()
  [ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
  command -v g++ >/dev/null 2>&1 || need+=(g++)
  dpkg -s libdnnl-dev >/dev/null 2>&1 || need+=(libdnnl-dev)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "quickstart: installing Debian packages: ${need[*]} (the real Fashion-MNIST files; g++ and oneDNN for the fast native route)"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"; }; then
      echo "quickstart: could not install ${need[*]}; pipe will download Fashion-MNIST from its official URLs and train on the wasm kernels where oneDNN is missing"
    fi
  fi
fi
if [ ! -x node_modules/.bin/tsc ]; then
  npm ci --no-audit --no-fund
elif [ ! -f build/Release/pipe_dnnl.node ]; then
  # Packages installed before oneDNN was: build the addon now (never fails; says why not).
  node native/install.mjs --optional
fi
[ -f dist/src/cli/main.js ] || npm run build
exec node bin/pipe.js run pipelines/fashion-mnist-quickstart.yaml "$@"
