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


class BrokenEntryPoint:
    name, value, dist = "exploding", "exploding_mod:Thing", None

    def load(self):
        raise ImportError("No module named 'exploding_mod'")


def test_a_plugin_that_fails_to_load_is_shown_with_its_error(monkeypatch, cli):
    from layerdecomp.constraints import registry

    monkeypatch.setattr(registry, "_loaded_entry_points", set())
    monkeypatch.setattr(registry, "_FAILED", {})
    monkeypatch.setattr(registry, "entry_points", lambda group: [BrokenEntryPoint()])
    monkeypatch.setattr("layerdecomp.cli.constraints.entry_points", lambda group: [])
    result = cli("constraints")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("exploding"))
    assert "failed to load: exploding_mod:Thing: ImportError: No module named 'exploding_mod'" in (
        line
    )
    assert result.stderr.count("warning: constraint plugin 'exploding'") == 1
