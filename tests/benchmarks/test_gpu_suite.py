"""The GPU suite's dry run: the same code on the CPU with tiny configs, so that the GPU run
cannot fail for a typo (issue #25)."""

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_suite.py"


@pytest.mark.usefixtures("one_thread")
def test_dry_run_prints_every_row(capsys):
    suite = runpy.run_path(str(SCRIPT), run_name="gpu_suite")
    assert suite["main"](["--dry-run", "--compiled-batches", "1,2"]) == 0
    out = capsys.readouterr().out
    tables = out[out.index("## per iteration (paste)") :]
    for regime in ("eager", "graphed", "graphed iteration", "compiled"):
        assert f"| sd15 64² | 1 | {regime} |" in tables
        assert f"| sd15 64² | 2 | {regime} |" in tables
    for row in ("| sd3 64² | 1 | eager |", "| sd3 64² | 1 | compiled |",
                "| inpaint 2×2 | sd15 64² | eager |", "| inpaint 2×2 | sd15 64² | compiled |",
                "| decompose | sd15 64² | eager |", "| decompose | sd15 64² | compiled |",
                "| decompose | sdxl 64² | eager |", "| decode 30, one call | sd15 64² | eager |",
                "| decode 30, slices of 1,048,576 px | sd15 64² | eager |",
                "| batch_images B=2 "):  # fmt: skip
        assert row in tables, row
    assert "# failed: none" in out and "# skipped: none" in out
