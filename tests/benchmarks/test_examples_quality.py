"""``benchmarks/examples_quality.py``: the README examples scored against their truth."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

from layerdecomp.layers import Layers

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
bench = runpy.run_path(str(BENCHMARKS / "examples_quality.py"), run_name="examples_quality")
RECORDS = {
    r["image"]: r
    for r in json.loads((BENCHMARKS.parent / "examples" / "examples.json").read_text())
}


def _layers(shares) -> Layers:
    shares = torch.as_tensor(shares.copy(), dtype=torch.float32)
    masks = torch.cat([shares, (1 - shares.sum(0, keepdim=True))])[:, None]
    return Layers(torch.zeros(masks.shape[0], 3, *masks.shape[-2:]), masks)


@pytest.mark.parametrize("name", ["fox_stripes.png", "bear_mouse_stripes.png"])
def test_the_truth_scores_one_and_its_complement_zero(name):
    truth = bench["truth_alphas"](RECORDS[name])
    assert truth.shape[0] == len(RECORDS[name]["truth"]["layers"])
    assert (truth.sum(0) <= 1 + 1e-9).all()  # visible shares: the front hides the back
    assert bench["score"](_layers(truth), RECORDS[name]) == (1.0, pytest.approx(1.0))
    assert (
        bench["score"](
            _layers(1 - truth[:1]) if truth.shape[0] == 1 else _layers(truth[::-1]), RECORDS[name]
        )[0]
        < 0.5
    )


def test_a_tiny_run_prints_a_row_per_example(capsys):
    fast = ["--updates", "1", "--samples", "1", "--runs", "1", "--final-samples", "1"]
    summary = bench["main"](["--seeds", "0", "--only", "fox_stripes.png", "--matting", "no", *fast])
    out = capsys.readouterr().out
    assert "| fox_stripes.png |" in out and summary["runs"] == 1
    assert 0 <= summary["mean_iou"] <= 1 and summary["below_0.9"] in (0.0, 1.0)
