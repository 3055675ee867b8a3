"""``benchmarks/budget_time.py``: paired runs of a decomposition whole and in chunks."""

from __future__ import annotations

import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "budget_time.py"


def test_a_tiny_paired_run_agrees_and_prints_the_table(capsys, one_thread):
    main = runpy.run_path(str(SCRIPT), run_name="budget_time")["main"]
    summary = main(["--updates", "1", "--rounds", "1", "--chunks", "8"])
    out = capsys.readouterr().out
    assert "| whole batch | none |" in out and "| chunks of 8 rows |" in out
    assert summary[None]["ratio"] == 1.0 and summary[None]["difference"] == 0.0
    assert summary[8]["difference"] < 1e-3  # the same layers, up to float rounding
    assert summary[8]["median"] > 0
