"""The benchmark scripts take the task's and the model's options from their one declaration: each
generated option carries the field's help, choices and bounds, an earlier name (``--iterations``)
is refused naming the new one, a value out of bounds is refused before any model loads, and the
values reach the config the script runs (tiny runs of ``mini``)."""

import re
import runpy
from pathlib import Path

import pytest

from layerdecomp.models.options import ModelOptions
from layerdecomp.options import option_fields
from layerdecomp.tasks import InpaintConfig, SuperresConfig

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TAKEN = {
    "mini_quality": {InpaintConfig: ("steps", "iters", "guidance")},
    "superres_quality": {
        ModelOptions: ("model", "device"),
        SuperresConfig: ("scale", "steps", "iters", "lam", "perturbation"),
    },
    "inpaint_speed": {
        ModelOptions: ("device", "dtype", "compile"),
        InpaintConfig: ("steps", "iters", "direction"),
    },
    "superres_memory": {
        ModelOptions: ("model", "device", "dtype"),
        SuperresConfig: ("scale", "steps", "iters"),
    },
}
"""Representative scripts → the declared options each takes (config class → names)."""
OWN_DEFAULT = {("mini_quality", "guidance"), ("superres_quality", "device")}
OWN_DEFAULT |= {("superres_memory", "model"), ("superres_memory", "steps")}
"""The options whose default is the benchmark's own (its help says why)."""


def script(name: str) -> dict:
    return runpy.run_path(str(BENCHMARKS / f"{name}.py"), run_name=name)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize("name", sorted(TAKEN))
def test_every_taken_option_has_the_declarations_help_choices_and_bounds(name, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option
    with pytest.raises(SystemExit):
        script(name)["main"](["--help"])
    entries: dict[str, str] = {}  # --flag → its help, the lines argparse wrapped joined
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("  --"):
            key = line.split()[0]
            entries[key] = line.strip()
        elif line.startswith("   ") and entries:
            entries[key] += " " + line.strip()
    for cls, names in TAKEN[name].items():
        leaves = option_fields(cls)
        for option in names:
            leaf = leaves[option]
            line = entries[flag(option)]
            assert leaf.help in line and leaf.bounds in line, line
            if leaf.choices:
                assert "{" + ",".join(leaf.choices) + "}" in line, line
            own = (name, option) in OWN_DEFAULT
            assert (" here: " in line) == own, line  # a benchmark default says why
            if not own:
                default = repr(leaf.default) if isinstance(leaf.default, str) else leaf.default
                assert f"(default {default}" in line, line


@pytest.mark.parametrize("name", ["mini_quality", "superres_quality", "inpaint_speed"])
def test_an_earlier_name_is_refused_naming_the_new_one(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        script(name)["main"](["--iterations", "3"])
    assert exit_.value.code == 2
    assert "iterations: renamed; use iters" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["mini_quality", "superres_quality", "step_size", "newton_gap"])
def test_a_value_out_of_the_declared_bounds_is_refused_before_any_model(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        script(name)["main"](["--steps", "0"])
    assert exit_.value.code == 2 and "steps" in capsys.readouterr().err


def test_benchmark_options_named_like_a_task_option_were_renamed(capsys):
    with pytest.raises(SystemExit):
        script("judge_generations")["main"](["--guidance", "5"])  # diffusers' s is not w
    assert "--guidance-scale" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script("superres_quality")["main"](["--prompt", "caption"])  # a source, not a text
    assert "--prompt-source" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script("task_flops")["main"](["--runs", "inpaint:sd15"])  # table rows, not the engine's
    assert "--rows" in capsys.readouterr().err


@pytest.mark.usefixtures("one_thread")
def test_mini_quality_runs_the_given_task_options(capsys):
    argv = ["--n", "1", "--batch", "1", "--steps", "1", "--iters", "1", "--guidance", "0.5"]
    script("mini_quality")["main"](argv)
    out = capsys.readouterr().out
    assert re.search(r"^model=mini n=1 size=64 steps=1 K=1 guidance=0\.5 batch=1 ", out, re.M)
    assert re.search(r"^newton \(true prompt\)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+3$", out, re.M)  # 1+2K


@pytest.mark.usefixtures("one_thread")
def test_superres_quality_runs_the_given_task_options(capsys):
    argv = ["--n", "1", "--steps", "1", "--iters", "1", "--lam", "0.2", "--scale", "2"]
    script("superres_quality")["main"]([*argv, "--perturbation", "0.01"])
    out = capsys.readouterr().out
    header = "steps=1 K=1 λ=constant:0.2 perturbation=0.01 prompt=empty"
    assert f"scale=×2 σ_y=0.05 {header}" in out


@pytest.mark.usefixtures("one_thread")
def test_inpaint_speed_runs_the_given_task_and_model_options(capsys):
    argv = ["--config", "tiny", "--repeats", "1", "--steps", "2", "--iters", "1"]
    script("inpaint_speed")["main"]([*argv, "--direction", "gradient", "--device", "cpu"])
    out = capsys.readouterr().out
    assert re.search(r"^steps x iterations\s+2 x 1 \(gradient\)$", out, re.M)
    assert re.search(r"^device / dtype\s+cpu / float32$", out, re.M)
