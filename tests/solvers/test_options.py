"""The solver's options as a typed tree (#23): bounds and choices refused naming the field, λ as
one :class:`Schedule` with a text form that parses back, the step sizes the old
``solvers.step_sizes`` gave."""

import dataclasses
import math

import pytest
import torch

from solvers import RefineOptions, SampleOptions, Schedule
from solvers.options import bounds_text


def test_the_defaults_are_the_papers_inpainting_setting():
    refine = RefineOptions()
    assert (refine.iters, refine.direction, refine.delta0) == (5, "newton", 0.005)
    assert (refine.step_scale, refine.perturbation) == ("max", 0.0)
    assert refine.lam == Schedule("linear", 0.5, 0.1) == Schedule()
    run = SampleOptions()
    assert (run.steps, run.restarts, run.restart_strength, run.eta) == (20, 0, 0.5, 0.0)
    assert run.refine == RefineOptions()


@pytest.mark.parametrize(
    ("cls", "field", "value", "message"),
    [
        (RefineOptions, "iters", -1, "iters: expected ≥ 0, got -1"),
        (RefineOptions, "iters", 2.0, "iters: expected an integer, got 2.0"),
        (RefineOptions, "iters", True, "iters: expected an integer, got True"),
        (RefineOptions, "iters", "5", "iters: expected an integer, got '5'"),
        (RefineOptions, "direction", "adam", "direction: 'adam' is not one of newton, gradient"),
        (RefineOptions, "step_scale", "mean", "step_scale: 'mean' is not one of max, error"),
        (RefineOptions, "delta0", 0, "delta0: expected > 0, got 0"),
        (RefineOptions, "delta0", -0.1, "delta0: expected > 0, got -0.1"),
        (RefineOptions, "delta0", math.inf, "delta0: expected > 0, got inf"),
        (RefineOptions, "delta0", "0.1", "delta0: expected a number, got '0.1'"),
        (RefineOptions, "perturbation", -0.1, "perturbation: expected ≥ 0, got -0.1"),
        (RefineOptions, "perturbation", math.nan, "perturbation: expected ≥ 0, got nan"),
        (RefineOptions, "lam", -1, "lam: step sizes must be finite and ≥ 0, got -1"),
        (RefineOptions, "lam", "cosine", "lam: 'cosine' is not a schedule"),
        (RefineOptions, "lam", [0.1, 0.2], "lam: '[0.1, 0.2]' is not a schedule"),
        (SampleOptions, "steps", 0, "steps: expected ≥ 1, got 0"),
        (SampleOptions, "steps", 2.0, "steps: expected an integer, got 2.0"),
        (SampleOptions, "restarts", -1, "restarts: expected ≥ 0, got -1"),
        (SampleOptions, "restart_strength", 0, "restart_strength: expected in (0, 1], got 0"),
        (SampleOptions, "restart_strength", 1.5, "restart_strength: expected in (0, 1], got 1.5"),
        (SampleOptions, "eta", -1.0, "eta: expected ≥ 0, got -1.0"),
        (SampleOptions, "eta", math.nan, "eta: expected ≥ 0, got nan"),
    ],
)
def test_bad_values_are_refused_naming_the_field(cls, field, value, message):
    with pytest.raises(ValueError) as info:
        cls(**{field: value})
    assert str(info.value).startswith(message), str(info.value)


def test_values_on_the_bounds_are_accepted():
    assert RefineOptions(iters=0, perturbation=0.0).iters == 0
    assert SampleOptions(steps=1, restart_strength=1.0, eta=0.0).restart_strength == 1.0
    assert RefineOptions(direction="gradient", step_scale="error").direction == "gradient"


def test_options_are_frozen_and_replace_is_checked():
    options = SampleOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.steps = 3  # type: ignore[misc]
    smaller = dataclasses.replace(options, refine=dataclasses.replace(options.refine, iters=2))
    assert smaller.refine.iters == 2 and options.refine.iters == 5
    with pytest.raises(ValueError, match="^iters"):
        dataclasses.replace(options.refine, iters=-2)
    assert hash(RefineOptions()) == hash(RefineOptions())  # usable as a cache key


def test_lam_is_parsed_into_a_schedule():
    assert RefineOptions(lam="linear:0.5:0.1").lam == Schedule("linear", 0.5, 0.1)
    assert RefineOptions(lam="constant:0.1").lam == Schedule("constant", 0.1, 0.1)
    assert RefineOptions(lam="dynamic:0.5").lam == Schedule("dynamic", 0.5, 0.5)
    assert RefineOptions(lam=0.2).lam == Schedule("constant", 0.2, 0.2)
    schedule = Schedule("linear", 1.0, 0.0)
    assert RefineOptions(lam=schedule).lam is schedule


def test_every_option_carries_its_help():
    for cls in (SampleOptions, RefineOptions):
        for f in dataclasses.fields(cls):
            assert f.metadata["help"], (cls.__name__, f.name)
    meta = {f.name: f.metadata for f in dataclasses.fields(SampleOptions)}
    assert bounds_text(meta["restart_strength"]) == "in (0, 1]"
    assert bounds_text(meta["steps"]) == "≥ 1"


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule(),
        Schedule("linear", 1.0, 0.0),
        Schedule("linear", 0.25, 0.75),
        Schedule("linear", 1e-07, 3.5),
        Schedule("constant", 0.1, 0.1),
        Schedule("constant", 0.0, 0.0),
        Schedule("dynamic", 0.5, 0.5),
        Schedule("dynamic", 2.0, 2.0),
    ],
    ids=str,
)
def test_a_schedule_round_trips_through_its_text(schedule):
    text = str(schedule)
    assert Schedule.parse(text) == schedule
    assert str(Schedule.parse(text)) == text
    assert Schedule.parse(schedule) is schedule


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linear:0.5:0.1", Schedule("linear", 0.5, 0.1)),
        ("linear", Schedule("linear", 0.5, 0.1)),
        ("linear:0.3", Schedule("linear", 0.3, 0.1)),
        ("constant:0.1", Schedule("constant", 0.1, 0.1)),
        ("constant", Schedule("constant", 0.5, 0.5)),
        ("dynamic", Schedule("dynamic", 0.5, 0.5)),
        ("dynamic:0.5", Schedule("dynamic", 0.5, 0.5)),
        ("0.1", Schedule("constant", 0.1, 0.1)),
        (" 0.2 ", Schedule("constant", 0.2, 0.2)),
        (0.2, Schedule("constant", 0.2, 0.2)),
        (1, Schedule("constant", 1.0, 1.0)),
        (0, Schedule("constant", 0.0, 0.0)),
    ],
)
def test_parse_reads_text_and_numbers(text, expected):
    parsed = Schedule.parse(text)
    assert parsed == expected
    assert type(parsed.start) is float and type(parsed.end) is float


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "cosine",
        "cosine:0.5",
        "LINEAR",
        "linear:a",
        "linear:0.5:0.1:0.2",
        "constant:0.1:0.2",
        "dynamic:0.5:0.5",
        "-0.1",
        "constant:-1",
        "linear:0.5:-0.1",
        "nan",
        True,
        None,
        [0.1, 0.2],
    ],
)
def test_parse_refuses_what_is_not_a_schedule(bad):
    with pytest.raises(ValueError, match="^lam: "):
        Schedule.parse(bad)


def test_a_bad_rule_or_end_point_is_refused_when_built():
    with pytest.raises(ValueError, match="^lam: 'cosine' is not one of linear, constant, dyn"):
        Schedule("cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^lam: step sizes must be finite and ≥ 0, got -0.5"):
        Schedule("linear", 0.5, -0.5)
    with pytest.raises(ValueError, match="^lam: step sizes must be numbers, got True"):
        Schedule("constant", True)  # type: ignore[arg-type]


def old_step_sizes(lam, iterations, *, lam_start=0.5, lam_end=0.1):
    """``solvers.step_sizes`` as it was before #23 (commit 0b913f4), the values to keep."""
    if isinstance(lam, str):
        if lam == "linear":
            if iterations == 1:
                return [float(lam_start)]
            return torch.linspace(lam_start, lam_end, iterations, dtype=torch.float64).tolist()
        if lam == "constant":
            return [float(lam_start)] * iterations
        return None  # dynamic
    return [float(lam)] * iterations


def test_sizes_equal_the_old_step_sizes():
    assert Schedule("linear").sizes(5) == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.1])
    assert Schedule.parse("constant:0.1").sizes(3) == [0.1, 0.1, 0.1]
    assert Schedule.parse(0.2).sizes(2) == [0.2, 0.2]
    assert Schedule("dynamic").sizes(4) is None
    for k in (0, 1, 2, 3, 5, 8, 20):  # exactly, not approximately
        assert Schedule().sizes(k) == old_step_sizes("linear", k)
        assert Schedule("linear", 1.0, 0.0).sizes(k) == old_step_sizes(
            "linear", k, lam_start=1.0, lam_end=0.0
        )
        constant = old_step_sizes("constant", k, lam_start=0.3)
        assert Schedule.parse("constant:0.3").sizes(k) == constant
        assert Schedule.parse(0.2).sizes(k) == old_step_sizes(0.2, k)
        assert Schedule.parse("dynamic:0.5").sizes(k) is None
    assert Schedule().sizes(1) == [0.5] and Schedule().sizes(0) == []


def test_refine_options_step_sizes_use_iters():
    assert RefineOptions(iters=5).step_sizes() == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.1])
    assert RefineOptions(iters=3, lam="constant:0.1").step_sizes() == [0.1, 0.1, 0.1]
    assert RefineOptions(iters=0).step_sizes() == []
    assert RefineOptions(lam="dynamic:0.5").step_sizes() is None


@pytest.mark.parametrize("schedule", [Schedule("dynamic", 0.5), Schedule("constant", 0.3)], ids=str)
def test_a_schedule_built_without_its_end_round_trips(schedule):
    assert Schedule.parse(str(schedule)) == schedule


def test_the_text_keeps_every_digit():
    schedule = Schedule("linear", 0.123456789, 0.1)
    assert Schedule.parse(str(schedule)) == schedule


@pytest.mark.parametrize("text", ["inf", "linear:inf:0.1", "dynamic:inf"])
def test_an_infinite_step_size_is_refused(text):
    with pytest.raises(ValueError, match="^lam: "):
        Schedule.parse(text)


@pytest.mark.parametrize("value", [{"iters": 3}, "x", None])
def test_refine_must_be_refine_options(value):
    with pytest.raises(ValueError, match="^refine: expected a RefineOptions"):
        SampleOptions(refine=value)
