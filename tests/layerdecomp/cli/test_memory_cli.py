"""``--max-memory`` on the task commands reaches the backend: a budget below one sample is one
error line naming the smallest that fits, and nothing is written."""

from __future__ import annotations

import re

import pytest

from tests.layerdecomp.cli.test_flow_models import files  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_budget_below_one_sample_is_refused_naming_the_smallest(
    files,  # noqa: F811
    sd1_folder,
    cli,
    one_line_error,
):
    args = ["decompose", files / "in.png", "--fg", "a", "--bg", "b", "-o", files / "out"]
    args += ["--model", sd1_folder, "--updates", "1", "--samples", "2", "--runs", "1"]
    args += ["--iters", "1", "--no-matting", "--seed", "0", "-q"]
    result = cli(*args, "--max-memory", "0.000001")
    one_line_error(result, 2, "max_memory: ", "the smallest that fits is")
    assert not (files / "out").exists()
    smallest = float(re.search(r"smallest that fits is ([0-9.]+) GiB", result.stderr).group(1))
    fits = cli(*args, "--max-memory", str(smallest * 2))
    assert fits.exit_code == 0, fits.output
    assert (files / "out" / "run.json").is_file()
