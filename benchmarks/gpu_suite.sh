#!/usr/bin/env bash
# The GPU benchmark suite on an offline GPU machine, log kept in $OUT (issue #25).
#
#   bash benchmarks/gpu_suite.sh [BUDGET_SECONDS] [gpu_suite.py options...]
#
# Needs .whl/ and .font/ from benchmarks/gpu_wheels.sh (carried along: they are git-ignored).
# Installs those wheels into /tmp/site (the image has torch, transformers, accelerate...), then
# runs benchmarks/gpu_suite.py with the budget (default 200 s; 0 = the whole suite, ~8 min)
# and tees everything into $OUT/gpu_suite.log (./out without $OUT). The exit status is the
# suite's (pipefail): 1 when a row failed, the others still printed.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-200}
shift || true
out=${OUT:-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export LAYERDECOMP_EMOJI_FONT=$PWD/.font/glyf_colr0.ttf
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  python3 benchmarks/gpu_suite.py --budget "$budget" "$@"
} 2>&1 | tee "$out/gpu_suite.log"
