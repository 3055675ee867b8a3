"""``benchmarks/budget_time.py``: paired runs of a decomposition whole and in chunks."""

from __future__ import annotations

import runpy
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "budget_time.py"


def test_a_tiny_paired_run_agrees_and_prints_the_table(capsys, one_thread):
    main = runpy.run_path(str(SCRIPT), run_name="budget_time")["main"]
    summary = main(["--updates", "1", "--rounds", "1", "--chunks", "8"])
    out = capsys.readouterr().out
    assert "| whole batch | none |" in out and "| chunks of 8 rows |" in out
    assert summary[None]["ratio"] == 1.0 and summary[None]["difference"] == 0.0
    assert summary[8]["difference"] < 1e-3  # the same layers, up to float rounding
    assert summary[8]["median"] > 0


def test_the_network_mode_times_each_call_in_the_planned_chunks(capsys, one_thread):
    main = runpy.run_path(str(SCRIPT), run_name="budget_time")["main"]
    summary = main(["--network", "tiny", "--side", "64", "--rows", "6", "--chunks", "3", "2"])
    out = capsys.readouterr().out
    assert "6 rows of 8×8 latents (64² images)" in out and "3 round(s)" in out
    for what in ("network", "decode"):
        assert summary[(what, None)]["sizes"] == [6] and summary[(what, None)]["ratio"] == 1.0
        assert summary[(what, 3)]["sizes"] == [3, 3] and summary[(what, 2)]["sizes"] == [2] * 3
        assert all(summary[(what, rows)]["difference"] < 1e-4 for rows in (3, 2))
        assert f"| {what} | of 3 | 3+3 |" in out
    assert torch.is_grad_enabled()  # no global state left behind
