"""``layerdecomp constraints`` and the command list."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "2", "--iters", "1", "--seed", "3", "-q"]


def test_help_lists_the_commands(cli):
    result = cli("--help")
    for command in ("superres", "style", "run", "constraints"):
        assert command in result.stdout
    assert "--scale" in cli("superres", "--help").stdout
    assert "--clip" in cli("style", "--help").stdout


def test_constraints_lists_the_builtins(cli):
    result = cli("constraints")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert names == sorted(names) and {"blend", "clip_style", "downsample", "mask"} <= set(names)
    line = next(line for line in lines if line.startswith("downsample"))
    assert "Super-resolution" in line and line.endswith("[built-in]")
