"""``benchmarks/memory_plan.py`` on miniatures: one row per model, its figures consistent."""

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "memory_plan.py"


@pytest.mark.usefixtures("one_thread")
def test_one_row_per_model_with_a_budget_below_the_default_peak(capsys):
    bench = runpy.run_path(str(SCRIPT), run_name="memory_plan")
    bench["main"](["--tiny", "--models", "sd15,flux", "--guidance", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[0] for c in cells] == ["sd15", "flux"]
    for cell in cells:
        weights, per_row, default, smallest = map(float, (cell[3], cell[4], cell[6], cell[7]))
        assert per_row > 0 and weights < smallest < default
