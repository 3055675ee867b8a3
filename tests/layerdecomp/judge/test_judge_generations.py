"""``benchmarks/judge_generations.py`` on a tiny SD 1.x pipeline: ceiling first, the score line
last, and a model that cannot be loaded gives one error line."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "judge_generations.py"
SCORE = r"judge: colour=(\d\.\d{3}) texture=(\d\.\d{3}) emoji=(\d\.\d{3})"


def run(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *map(str, args)])
    runpy.run_path(str(SCRIPT), run_name="__main__")


def test_tiny_model_is_judged(capsys, monkeypatch, sd1_folder, one_thread):
    args = ["--model", sd1_folder, "--n", 3, "--steps", 1, "--size", 32, "--batch", 2]
    run(monkeypatch, *args, "--ceiling-n", 16, "--breakdown")
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(SCORE, lines[-1]), lines[-1]
    ceiling = next(line for line in lines if line.startswith("ground truth (ceiling)"))
    assert ceiling.split()[3] == "16"
    for kind in ("both", "fg only", "bg only"):
        assert sum(line.startswith(f"generated, {kind} ") for line in lines) == 1
    values = [float(v) for v in re.fullmatch(SCORE, lines[-1]).groups()]
    assert all(abs(v * 3 - round(v * 3)) < 0.01 for v in values)  # hits out of 3 images


def test_a_missing_model_is_one_error_line(capsys, monkeypatch, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        run(monkeypatch, "--model", tmp_path / "nothing", "--n", 1, "--ceiling-n", 1)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model ") and "no such" in err[0]
