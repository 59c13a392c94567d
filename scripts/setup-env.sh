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
python -c "import lrm_dist, torch, ray, deepspeed, bpy; print('lrm-dist env ready: torch', torch.__version__, 'ray', ray.__version__, 'bpy', bpy.app.version_string)"
