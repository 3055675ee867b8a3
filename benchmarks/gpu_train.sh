#!/usr/bin/env bash
# One GPU run of issue #24: render + VAE + UNet + report within MINUTES of wall clock (from this
# script's start: the wheel install and the imports included), then the step timings of
# benchmarks/train_step.py for at most BENCH seconds (default 60; 0: none), then the packing.
# The whole call takes about MINUTES + BENCH + 15 s.
#
#   bash benchmarks/gpu_train.sh 9              # on the GPU machine, from the repository root
#   DRY=1 bash benchmarks/gpu_train.sh 0.5      # the same steps on the CPU with configs/tiny.toml
#   COMPILE=none bash benchmarks/gpu_train.sh 9   # override the config's compile mode (eager)
#   BENCH=0 bash benchmarks/gpu_train.sh 9      # no step benchmark after the run
#
# Needs .whl/ (benchmarks/gpu_wheels.sh) and .font/ carried beside the tree; without .whl/ the
# current Python's packages are used (PYTHON=... picks the interpreter). Leaves in $OUT (default
# ./gpu_train_out) at most 7 files, each under 15 MiB:
#   train.log        everything printed (install, training, benchmark)
#   loss.png         the VAE and UNet loss curves
#   samples.png      the sample grid of the trained model
#   train_step.json  ms per VAE/UNet step and the device-busy share (benchmarks/train_step.py)
#   model.tar.part-NN  the model folder `mini-gpu/` (SD-format diffusers folder with its card,
#                    losses.json, reconstructions): cat model.tar.part-* | tar -x
set -uo pipefail
START=$(date +%s)
MINUTES=${1:-9}
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
OUT=${OUT:-$PWD/gpu_train_out}
WORK=${WORK:-/tmp/gpu_train}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK"
LOG=$OUT/train.log
: >"$LOG"
say() { echo "[$(date -u +%T) +$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }

if [ "${DRY:-0}" = 1 ]; then
    CONFIG=tiny STEPS=3 RENDER=512
else
    CONFIG=gpu STEPS=20 RENDER=16384
fi
RESERVE=10  # s of MINUTES kept for the training call's exit
BENCH=${BENCH:-60}
say "gpu_train.sh $MINUTES min, config $CONFIG, out $OUT"

if [ "${DRY:-0}" != 1 ] && compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl 2>&1 | tee -a "$LOG"
    export PYTHONPATH=/tmp/site:$PWD
else
    say "no .whl/: using $PY's own packages"
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
FONT=$(compgen -G ".font/*.ttf" | head -1 || true)
if [ -n "$FONT" ]; then export LAYERDECOMP_EMOJI_FONT=$PWD/$FONT; fi
command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 | tee -a "$LOG"
PRE=$(date +%s)
"$PY" -c "import click, diffusers, kornia, torch, transformers
from layerdecomp.data.emoji import font_path
print('font', font_path(), '| torch', torch.__version__, '| cuda', torch.cuda.is_available(),
      '| diffusers', diffusers.__version__)" 2>&1 | tee -a "$LOG" || { say "preflight failed"; exit 2; }

IMPORTS=$(($(date +%s) - PRE))  # what the training call's imports will take again, roughly
MODE=${COMPILE:-$("$PY" -c "import tomllib  # the config's mode, without the imports
print(tomllib.load(open('layerdecomp/training/configs/$CONFIG.toml', 'rb')).get('compile', 'none'))")}
say "compile mode $MODE"
# what is left for the training call: the budget minus the time spent, the reserve and imports
TRAIN_MIN=$("$PY" -c "
print(f'{max(0.2, ($MINUTES * 60 - ($(date +%s) - $START) - $RESERVE - $IMPORTS) / 60):.3f}')")
say "training for $TRAIN_MIN min (imports took $IMPORTS s)"
# a hang (a driver, a compiler) must not eat the benchmark and the log: stop at twice the margin
timeout "$("$PY" -c "print(int($TRAIN_MIN * 60 + 2 * $IMPORTS + 90))")" \
    "$PY" -m layerdecomp.training --config "$CONFIG" --out "$WORK/mini-gpu" --minutes "$TRAIN_MIN" \
    --compile "$MODE" 2>&1 | tee -a "$LOG"
TRAIN_RC=${PIPESTATUS[0]}
say "training exit $TRAIN_RC"

# the step benchmark compiles again (inductor's cache makes that quicker) and may be cut short:
# its JSON keeps what it measured
if [ "$BENCH" -gt 15 ]; then
    timeout "$BENCH" "$PY" benchmarks/train_step.py --config "$CONFIG" --steps "$STEPS" \
        --render "$RENDER" --json "$OUT/train_step.json" --compile "$MODE" 2>&1 | grep -v -e "^USDT" -e "gpuGetDeviceCount" | tee -a "$LOG"
    say "train_step exit ${PIPESTATUS[0]}"
else
    say "no step benchmark (BENCH=$BENCH s)"
fi

if [ -f "$WORK/mini-gpu/model_index.json" ]; then
    cp "$WORK/mini-gpu/loss.png" "$WORK/mini-gpu/samples.png" "$OUT/" 2>/dev/null
    tar -C "$WORK" --exclude=mini-gpu/checkpoint --exclude=mini-gpu/data.safetensors \
        -cf - mini-gpu | split -b 14m -d - "$OUT/model.tar.part-"
    say "packed: $(ls "$OUT" | tr '\n' ' ')"
else
    say "no model folder to pack"
fi
du -h "$OUT"/* | tee -a "$LOG"
say "done in $(($(date +%s) - START)) s (training $MINUTES min, benchmark at most $BENCH s)"
exit "$TRAIN_RC"
