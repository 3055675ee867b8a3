"""The GPU suite's dry run: the same code on the CPU with tiny configs, so that the GPU run
cannot fail for a typo (issue #25)."""

import re
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_suite.py"
BUDGET_ROW = re.compile(
    r"\| decompose, (?P<what>[^:]+): network ≤ (?P<net>\d+)/(?P<net_all>\d+) rows, decode ≤ "
    r"(?P<dec>\d+)/(?P<dec_all>\d+), ×[\d.]+ time, masks Δ (?P<diff>[\d.e+-]+) \| "
    r"(?P<model>\w+) 64² \| eager \|"
)


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
    _check_memory_rows(tables)


def _check_memory_rows(tables: str) -> None:
    """#39's rows, last in the plan: per model a run without a budget and two budgeted ones
    (the second asked below one sample, refused, then run at the smallest the plan named), which
    split the network's batch and the decoder's and give the same masks; the offloaded pipeline
    (model offload; sequential offload is skipped on the CPU) gives the plain one's masks."""
    rows = [m.groupdict() for m in BUDGET_ROW.finditer(tables)]
    budget = {model: [r for r in rows if r["model"] == model] for model in ("sd15", "sdxl")}
    for model, runs in budget.items():
        whole = [r for r in runs if r["what"] == "no budget, updates=1"]
        assert len(whole) == 1 and whole[0]["net"] == whole[0]["net_all"] == "30", (model, runs)
        budgeted = [r for r in runs if r["what"].startswith("budget ")]
        assert len(budgeted) == 2, (model, runs)
        assert re.fullmatch(r"budget [\d.]+ GiB \([\d.]+ refused\)", budgeted[1]["what"])
        for run in budgeted:
            assert int(run["net"]) < 30 and int(run["dec"]) < 30, run
            assert float(run["diff"]) < 1e-4, run
        assert int(budgeted[1]["net"]) <= int(budgeted[0]["net"])
    offload = {r["what"]: r for r in rows if "offload" in r["what"]}
    assert set(offload) == {"no offload, updates=1", "model offload, from_pipe"}
    assert offload["model offload, from_pipe"]["diff"] == "0.0e+00"
    assert "| decompose, sequential offload: skipped on CPU: needs an accelerator |" in tables
    last = tables.index("| decompose | sd15 64² | compiled |")
    assert all(tables.index(f"| decompose, {r['what']}:") > last for r in rows)
