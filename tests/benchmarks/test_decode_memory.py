"""``benchmarks/decode_memory.py`` on a miniature VAE: one row per budget, slices as asked."""

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "decode_memory.py"


@pytest.mark.usefixtures("one_thread")
def test_one_row_per_budget_with_the_images_each_call_holds(capsys):
    bench = runpy.run_path(str(SCRIPT), run_name="decode_memory")
    bench["main"](["--tiny", "--side", "32", "--batch", "3", "--budgets", "0,2048,1024"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][2:]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [(c[0], c[1]) for c in cells] == [("one call", "3"), ("2,048", "2"), ("1,024", "1")]
    assert cells[0][5] == "1.000" and cells[0][6] == "1.00"
    assert all(float(c[2]) >= 0 and float(c[4]) > 0 for c in cells)
