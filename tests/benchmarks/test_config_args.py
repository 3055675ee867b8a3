"""``benchmarks/_config_args.py``: some of a config's options, several configs in one parser, a
benchmark's own default with its reason, refused earlier names, and the config built from them."""

import argparse
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _config_args import (  # noqa: E402
    add_config_arguments,
    add_refused,
    config_overrides,
    parse_config,
    parse_placement,
)

from layerdecomp.layers import DecomposeConfig  # noqa: E402
from layerdecomp.models.options import ModelOptions  # noqa: E402
from layerdecomp.tasks import InpaintConfig, SuperresConfig  # noqa: E402


def help_lines(parser: argparse.ArgumentParser, monkeypatch) -> dict[str, str]:
    """``--flag`` → its help line, unwrapped."""
    monkeypatch.setenv("COLUMNS", "1000")
    lines = parser.format_help().splitlines()
    return {line.split()[0]: line for line in lines if line.strip().startswith("--")}


def test_only_takes_those_options_and_a_benchmark_default_says_why(monkeypatch):
    parser = argparse.ArgumentParser()
    names = add_config_arguments(
        parser, InpaintConfig, only=("iters", "steps"), defaults={"steps": (2, "a speed test")}
    )
    assert names == ["steps", "iters"]  # the declaration's order
    args = parser.parse_args([])
    assert config_overrides(args, names) == {"steps": 2}  # the benchmark's default is applied
    config = parse_config(parser, InpaintConfig, args, names)
    assert config.sampling.steps == 2 and config.sampling.refine.iters == 5
    lines = help_lines(parser, monkeypatch)
    assert set(lines) == {"--steps", "--iters"}
    said = "Sampling steps. (default 2 here: a speed test; the config's 20; ≥ 1)"
    assert said in lines["--steps"]
    assert "(default 5; ≥ 0)" in lines["--iters"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--lam", "0.1"])  # not taken


def test_names_that_are_not_options_are_refused_when_the_script_is_written():
    parser = argparse.ArgumentParser()
    with pytest.raises(KeyError, match="iterations"):
        add_config_arguments(parser, InpaintConfig, only=("iterations",))
    with pytest.raises(KeyError, match="not taken"):
        add_config_arguments(parser, InpaintConfig, only=("iters",), defaults={"steps": (2, "")})


def test_two_configs_in_one_parser_build_each_its_own(monkeypatch):
    parser = argparse.ArgumentParser()
    model = add_config_arguments(parser, ModelOptions, only=("model", "dtype"))
    task = add_config_arguments(parser, SuperresConfig, only=("scale", "lam"))
    args = parser.parse_args(["--dtype", "float32", "--scale", "8", "--lam", "0.2"])
    assert parse_config(parser, ModelOptions, args, model) == ModelOptions(dtype="float32")
    config = parse_config(parser, SuperresConfig, args, task, {"method": "vae_newton"})
    assert (config.scale, str(config.sampling.refine.lam), config.method) == (
        8,
        "constant:0.2",
        "vae_newton",
    )
    lines = help_lines(parser, monkeypatch)
    assert "{auto,float16,bfloat16,float32}" in lines["--dtype"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--dtype", "float8"])


def test_an_earlier_name_is_refused_only_where_its_replacement_is_taken(capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--restarts", type=int, default=0)  # the script's own: kept
    add_config_arguments(parser, DecomposeConfig, only=("updates",))
    with pytest.raises(SystemExit):
        parser.parse_args(["--iterations", "3"])
    assert "iterations: renamed; use updates" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--newton-iters", "3"])  # iters is not taken: not an option here
    err = capsys.readouterr().err
    assert "unrecognized arguments: --newton-iters" in err and "renamed" not in err
    assert parser.parse_args(["--restarts", "2"]).restarts == 2


def test_a_value_out_of_bounds_is_a_usage_error_naming_the_option(capsys):
    parser = argparse.ArgumentParser()
    names = add_config_arguments(parser, InpaintConfig, only=("steps",))
    with pytest.raises(SystemExit) as exit_:
        parse_config(parser, InpaintConfig, parser.parse_args(["--steps", "0"]), names)
    assert exit_.value.code == 2 and "steps" in capsys.readouterr().err


def test_a_renamed_benchmark_option_names_its_new_name(capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--guidance-scale", type=float, default=5.0)
    add_refused(parser, "guidance", "use --guidance-scale")
    assert parser.parse_args(["--guidance-scale", "3"]).guidance_scale == 3.0
    with pytest.raises(SystemExit):
        parser.parse_args(["--guidance", "3"])
    assert "--guidance: use --guidance-scale" in capsys.readouterr().err


def test_the_placement_resolves_auto_and_refuses_an_unknown_device(capsys):
    parser = argparse.ArgumentParser()
    names = add_config_arguments(parser, ModelOptions, only=("device", "dtype"))
    device, dtype = parse_placement(parser, parser.parse_args(["--device", "cpu"]), names)
    assert (device, dtype) == (torch.device("cpu"), torch.float32)
    with pytest.raises(SystemExit):
        parse_placement(parser, parser.parse_args(["--device", "nowhere"]), names)
    assert "nowhere" in capsys.readouterr().err
