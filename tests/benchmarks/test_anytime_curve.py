"""``benchmarks/anytime_curve.py``: quality against work, one point per engine and update count."""

import json
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "anytime_curve.py"
bench = runpy.run_path(str(SCRIPT), run_name="anytime_curve")

TINY = "--runs 1 --samples 1 --final-samples 1 --orient-levels 1"


def test_engine_flags_become_typed_options():
    assert bench["engine_options"]("") == {}
    assert bench["engine_options"]("--runs 2 --anchor no --noise-level 0.5") == {
        "runs": 2,
        "anchor": False,
        "noise_level": 0.5,
    }


@pytest.mark.usefixtures("one_thread")
def test_points_price_the_engine_cache_their_rows_and_draw_the_curve(tmp_path, capsys):
    cache, png = tmp_path / "rows", tmp_path / "curve.png"
    argv = ["--engine", f"tiny={TINY}", "--updates", "1", "2", "--n", "2"]
    argv += ["--cache", str(cache), "--plot", str(png)]
    bench["main"](argv)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| mini |")]
    assert len(lines) == 2
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    # one more update: each of the 2 layers draws one more sample (1 + 2·iters forwards, a decode)
    assert int(cells[1][3]) - int(cells[0][3]) == 14 and int(cells[1][4]) - int(cells[0][4]) == 2
    for row, updates in zip(cells, (1, 2), strict=True):
        rows = json.loads((cache / f"mini__tiny__u{updates}.json").read_text())["mini"]
        assert [r["index"] for r in rows] == [0, 1]
        mean = sum(r["iou"] for r in rows) / 2
        assert float(row[6]) == pytest.approx(mean, abs=6e-4)
    assert png.stat().st_size > 0
    # a second call reuses the cached rows: no quality run
    bench["quality"].main = lambda argv: pytest.fail("recomputed a cached point")
    bench["main"](argv)
    assert capsys.readouterr().out.count("| mini |") == 2
