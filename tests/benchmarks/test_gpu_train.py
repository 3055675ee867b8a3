"""The one GPU training run's dry run (issue #24): ``DRY=1 bash benchmarks/gpu_train.sh`` runs
the same steps on the CPU with ``configs/tiny.toml`` (install skipped, train, step benchmark,
packing), so that the GPU run cannot fail for a typo."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from layerdecomp.models import load_model
from layerdecomp.training.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_trains_benchmarks_and_packs_a_loadable_model(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "DRY": "1", "OUT": str(out), "WORK": str(work)}
    env.update(PYTHON=sys.executable, OMP_NUM_THREADS="1")
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_train.sh"), "0.6"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "compile mode none" in log and "train_step exit 0" in log
    figures = json.loads((out / "train_step.json").read_text())
    assert figures["config"] == "tiny" and figures["compile"] == "none"
    for loop in ("vae", "unet"):
        assert figures[loop]["ms_per_step"] > 0 and 0 < figures[loop]["busy"] <= 1.0
    assert set(figures["composites_per_s"]) and all(
        rate > 0 for rate in figures["composites_per_s"].values()
    )
    parts = sorted(out.glob("model.tar.part-*"))
    assert parts and all(p.stat().st_size <= 14 * 2**20 for p in parts)
    packed = tmp_path / "model.tar"
    packed.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(packed) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    model = load_model(str(tmp_path / "unpacked" / "mini-gpu"), device="cpu")
    tiny = load_config("tiny")
    assert tuple(model.unet.config.block_out_channels) == tiny.unet.block_out_channels
    factor = 2 ** (len(tiny.vae.block_out_channels) - 1)
    assert model.unet.config.sample_size * factor == tiny.data.size
