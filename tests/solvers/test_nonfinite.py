"""NaN/Inf is an error naming where it happened, never a silent no-op (δ = 0, h = 0)."""

import pickle

import pytest
import torch

from solvers import (
    FiniteGuard,
    NonFiniteError,
    RefineOptions,
    SampleOptions,
    gradient,
    newton,
    refine,
    sample,
)
from solvers.errors import X0_PROBE
from tests.oracles import GaussianDenoiser, ddim_scheduler, mask_constraint, rbf_covariance

SIDE = 8


@pytest.fixture(scope="module")
def problem():
    scheduler = ddim_scheduler()
    denoiser = GaussianDenoiser(
        torch.zeros(SIDE * SIDE, dtype=torch.float64),
        rbf_covariance(SIDE),
        (1, SIDE, SIDE),
        scheduler,
    )
    truth = denoiser.sample_prior(2, torch.Generator().manual_seed(0))
    known = torch.zeros(1, 1, SIDE, SIDE, dtype=torch.float64)
    known[..., : SIDE // 2] = 1
    x_t = torch.randn(truth.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return denoiser, scheduler, mask_constraint(truth * known, known), x_t


def poisoned_constraint(inner, bad_call, *, where="e", value=float("nan")):
    """``inner``, except that its ``bad_call``-th call (1-based) puts ``value`` in e or residual."""
    calls = [0]

    def constraint(x0):
        calls[0] += 1
        e, residual = inner(x0)
        if calls[0] == bad_call:
            if where == "e":
                e = e.clone()
                e[0, 0, 0, 0] = value
            else:
                residual = residual.clone()
                residual[-1] = value
        return e, residual

    return constraint


class PoisonedDenoiser:
    """An oracle whose x̂0 turns NaN at one timestep."""

    def __init__(self, inner, bad_timestep):
        self.inner, self.bad_timestep, self.scheduler = inner, bad_timestep, inner.scheduler

    def __call__(self, x_t, t):
        x0 = self.inner(x_t, t)
        if int(t) == self.bad_timestep:
            x0 = x0.clone()
            x0[..., 0, 0] = float("nan")
        return x0


def test_the_error_class():
    assert issubclass(NonFiniteError, FloatingPointError)
    assert not issubclass(NonFiniteError, ValueError)
    exc = NonFiniteError("x̂0", timestep=801.0, count=2, total=64, hint="why")
    exc.locate(step=0, steps=5, restart=0, iteration=1, iterations=3)
    expected = "step 1 of 5 (timestep 801), iteration 2 of 3: x̂0 is NaN/Inf (2 of 64 values) — why"
    assert str(exc) == expected
    exc.locate(step=4)  # fields already set are kept
    assert exc.step == 0
    again = pickle.loads(pickle.dumps(exc))  # crosses process boundaries intact
    assert str(again) == expected and again.step == 0


@pytest.mark.parametrize("direction", ["newton", "gradient"])
def test_refine_raises_on_a_nan_constraint_error(problem, direction):
    denoiser, _, constraint, x_t = problem
    bad = poisoned_constraint(constraint, 3)
    with pytest.raises(NonFiniteError) as info:
        refine(denoiser, bad, x_t, 601, RefineOptions(iters=5, direction=direction))
    message = str(info.value)
    assert message.startswith("timestep 601, iteration 3 of 5: the constraint error e is NaN/Inf")
    assert "a bad constraint?" in message
    assert (info.value.timestep, info.value.iteration, info.value.step) == (601, 2, None)


def test_refine_raises_on_an_inf_residual_even_after_the_last_iteration(problem):
    denoiser, _, constraint, x_t = problem
    for bad_call, where in ((2, "iteration 2 of 3"), (4, r"after the last iteration \(3\)")):
        bad = poisoned_constraint(constraint, bad_call, where="residual", value=float("inf"))
        with pytest.raises(NonFiniteError, match=f"^timestep 601, {where}: the constraint resid"):
            refine(denoiser, bad, x_t, 601, RefineOptions(iters=3))


def test_refine_raises_on_nan_x0_and_nan_x_t(problem):
    denoiser, _, constraint, x_t = problem
    bad = PoisonedDenoiser(denoiser, 601)
    with pytest.raises(NonFiniteError, match="^timestep 601, iteration 1 of 2: x̂0 is NaN/Inf"):
        refine(bad, constraint, x_t, 601, RefineOptions(iters=2))
    with pytest.raises(NonFiniteError, match="the model diverged"):  # float64: no float16 hint
        refine(bad, constraint, x_t, 601, RefineOptions(iters=0))
    nan_x_t = x_t.clone()
    nan_x_t[1] = float("nan")
    with pytest.raises(NonFiniteError, match=r"^timestep 601, .*x_t is NaN/Inf \(64 of 128"):
        refine(denoiser, constraint, nan_x_t, 601, RefineOptions(iters=2))


def test_a_float16_overflow_suggests_float32(problem):
    _, _, constraint, x_t = problem

    def overflowing(x, t):
        return x * 1e5  # beyond float16's 65504

    def half_constraint(x0):
        e, r = constraint(x0.double())
        return e.to(x0.dtype), r

    # the library's hint names no command-line flag (#23): the CLI maps it to --dtype
    hint = r"float16 overflow in the model\? run the model in float32$"
    with pytest.raises(NonFiniteError, match=r"x̂0 is NaN/Inf .* " + hint):
        refine(overflowing, half_constraint, x_t.half() + 1, 601, RefineOptions(iters=1))


@pytest.mark.parametrize("direction", [newton, gradient])
def test_directions_refuse_nan_instead_of_returning_zero(problem, direction):
    denoiser, _, _, x_t = problem
    e = torch.ones_like(x_t)
    e[0, 0, 3, 3] = float("nan")
    with pytest.raises(NonFiniteError, match="^timestep 401: the constraint error e is NaN/Inf"):
        direction(denoiser, x_t, 401, e)
    bad = PoisonedDenoiser(denoiser, 401)
    with pytest.raises(NonFiniteError, match="^timestep 401: x̂0"):
        direction(bad, x_t, 401, torch.ones_like(x_t))


def test_sample_names_the_step_where_the_denoiser_turned_nan(problem):
    denoiser, scheduler, constraint, x_t = problem
    scheduler.set_timesteps(5)
    timesteps = [int(t) for t in scheduler.timesteps]
    bad = PoisonedDenoiser(denoiser, timesteps[2])
    options = SampleOptions(steps=5, refine=RefineOptions(iters=2))
    with pytest.raises(NonFiniteError) as info:
        sample(bad, constraint, x_t, options, scheduler=scheduler)
    assert str(info.value).startswith(
        f"step 3 of 5 (timestep {timesteps[2]}), iteration 1 of 2: x̂0 is NaN/Inf"
    )
    assert (info.value.step, info.value.timestep, info.value.iteration) == (2, timesteps[2], 0)


def test_sample_names_the_step_of_a_nan_constraint_error(problem):
    denoiser, scheduler, constraint, x_t = problem
    options = SampleOptions(steps=5, refine=RefineOptions(iters=2))
    # three constraint calls per step (before each iteration, after the last): call 8 is step 3's
    # second iteration
    bad = poisoned_constraint(constraint, 8)
    with pytest.raises(NonFiniteError, match=r"^step 3 of 5 \(timestep \d+\), iteration 2 of 2: "):
        sample(denoiser, bad, x_t, options, scheduler=scheduler)
    # restarts are named too
    bad = poisoned_constraint(constraint, 3 * 5 + 1)
    with pytest.raises(NonFiniteError, match=r"^restart 1, step \d of 5 .*iteration 1 of 2"):
        sample(
            denoiser,
            bad,
            x_t,
            SampleOptions(steps=5, refine=RefineOptions(iters=2), restarts=1),
            scheduler=scheduler,
            generator=torch.Generator().manual_seed(0),
        )


def test_a_normal_oracle_run_is_unaffected(problem):
    denoiser, scheduler, constraint, x_t = problem
    options = SampleOptions(steps=5, refine=RefineOptions(iters=2))
    out = sample(denoiser, constraint, x_t, options, scheduler=scheduler)
    assert torch.isfinite(out.sample).all() and out.residuals.shape == (5, 3, 2)
    # a constraint that is already met (e = 0) is not an error: h = 0 as before
    zero = sample(
        denoiser,
        lambda x0: (torch.zeros_like(x0), torch.zeros(2)),
        x_t,
        options,
        scheduler=scheduler,
    )
    assert torch.isfinite(zero.sample).all() and (zero.residuals == 0).all()


class ProbePoisoner:
    """An oracle whose ``call``-th evaluation (1-based) at ``timestep`` puts NaN in one value.

    With Newton and no given x̂0, refine calls the denoiser at one timestep in the order: x̂0, then
    per iteration the probe x_t + δ·e and the new x̂0, so call 2k + 2 is iteration k + 1's probe.
    """

    def __init__(self, inner, timestep, call):
        self.inner, self.scheduler = inner, inner.scheduler
        self.timestep, self.call, self.seen = timestep, call, 0

    def __call__(self, x_t, t):
        x0 = self.inner(x_t, t)
        if int(t) == self.timestep:
            self.seen += 1
            if self.seen == self.call:
                x0 = x0.clone()
                x0[0, 0, 0, 0] = float("nan")
        return x0


def test_a_deferred_check_names_the_first_failure_as_an_immediate_check_would(problem):
    """NaN at step 3, iteration 2 (the finite-difference probe): the guard reads it back only at
    the end of the run, after NaN has spread to every later check, and names the first one with
    the wording of the check made at once."""
    denoiser, scheduler, constraint, x_t = problem
    scheduler.set_timesteps(5)
    t = int(scheduler.timesteps[2])
    seen = []
    with pytest.raises(NonFiniteError) as info:
        sample(
            ProbePoisoner(denoiser, t, 2 * 1 + 2),
            constraint,
            x_t,
            SampleOptions(steps=5, refine=RefineOptions(iters=3)),
            scheduler=scheduler,
            callback=seen.append,
        )
    deferred = info.value
    expected = (
        f"step 3 of 5 (timestep {t}), iteration 2 of 3: x̂0 at the finite-difference probe "
        "x_t + δ·e is NaN/Inf (1 of 128 values) — the model diverged, or x_t was far outside its "
        "training range"
    )
    assert str(deferred) == expected
    assert (deferred.step, deferred.steps, deferred.restart) == (2, 5, 0)
    assert (deferred.timestep, deferred.iteration, deferred.iterations) == (t, 1, 3)
    assert (deferred.quantity, deferred.count, deferred.total) == (X0_PROBE, 1, 128)
    assert len(seen) == 5  # read once per run: the steps after the NaN still ran

    # the same NaN met by a direction called without a guard: checked at once, then located
    # where refine and sample locate it
    x0 = denoiser(x_t, t)
    e, _ = constraint(x0)
    with pytest.raises(NonFiniteError) as info:
        newton(ProbePoisoner(denoiser, t, 1), x_t, t, e, x0=x0)
    immediate = info.value.locate(step=2, steps=5, restart=0, iteration=1, iterations=3)
    assert str(immediate) == str(deferred)
    # and an immediate guard at the same place
    with pytest.raises(NonFiniteError) as info:
        guard = FiniteGuard(immediate=True)
        guard.at(step=2, steps=5, restart=0, timestep=t, iteration=1, iterations=3)
        guard.check(ProbePoisoner(denoiser, t, 1)(x_t, t), X0_PROBE, t)
    assert str(info.value) == str(deferred)


def test_a_deferred_residual_check_takes_the_timestep_of_its_place(problem):
    """The residual is checked without a timestep: the guard's location supplies it."""
    denoiser, scheduler, constraint, x_t = problem
    scheduler.set_timesteps(5)
    t = int(scheduler.timesteps[2])
    # four constraint calls per step with K = 3: call 4·2 + 2 is step 3's second iteration
    bad = poisoned_constraint(constraint, 4 * 2 + 2, where="residual", value=float("inf"))
    with pytest.raises(NonFiniteError) as info:
        sample(
            denoiser,
            bad,
            x_t,
            SampleOptions(steps=5, refine=RefineOptions(iters=3)),
            scheduler=scheduler,
        )
    assert str(info.value).startswith(
        f"step 3 of 5 (timestep {t}), iteration 2 of 3: the constraint residual is NaN/Inf "
        "(1 of 2 values) — a bad constraint?"
    )


def test_refine_with_a_callers_guard_leaves_the_read_to_the_caller(problem):
    denoiser, _, constraint, x_t = problem
    guard = FiniteGuard()
    bad = poisoned_constraint(constraint, 2)
    out = refine(denoiser, bad, x_t, 601, RefineOptions(iters=3), guard=guard)  # no raise yet
    assert out.residuals.shape == (4, 2)
    with pytest.raises(NonFiniteError, match="^timestep 601, iteration 2 of 3: the constraint e"):
        guard.raise_if_bad()
    guard.raise_if_bad()  # read and cleared: nothing queued any more
