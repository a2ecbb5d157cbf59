#!/usr/bin/env bash
# Create .venv and install zturbo into it (idempotent). TORCH_SPEC picks the torch build:
# the default torch==2.13.0 is the CPU build on CI and the CUDA build from PyPI on a Linux GPU box.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[test]"
# spandrel (zturbo upscale) without torchvision: see pyproject.toml and src/zturbo/upscale/loading.py
.venv/bin/python -m pip install -q --no-deps "spandrel>=0.4.2,<0.5"
echo "zturbo installed in $(pwd)/.venv  (activate: source .venv/bin/activate)"
