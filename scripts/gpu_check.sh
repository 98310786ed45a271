#!/usr/bin/env bash
# GPU check (issue 19): each model for a few steps under trainer=gpu, bf16, fp16 and ddp (1 device); finite
# losses, s/iteration and s/kimg, one JSON (default benchmarks/results/gpu_check.json).
#   bash scripts/gpu_check.sh [out.json]
# On a machine without CUDA it says so in one line and exits 0 without running anything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device is present; nothing was run."
  exit 0
fi
export WANDB_MODE="${WANDB_MODE:-disabled}"
exec "$PY" scripts/gpu_check.py "${1:-benchmarks/results/gpu_check.json}"
