"""The Newton-vs-gradient benchmark runs on the CPU and ends with its ratio line."""

import re
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "newton_vs_gradient.py"


def test_tiny_config_prints_the_ratio_line(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--config", "tiny", "--repeats", "5"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    match = re.fullmatch(r"time_ratio=(\d+\.\d\d) memory_ratio=(\d+\.\d\d)", lines[-1])
    assert match, lines[-1]
    assert float(match.group(1)) > 0 and float(match.group(2)) > 1.0  # backprop keeps a graph
    assert any(line.startswith("newton ") for line in lines)
