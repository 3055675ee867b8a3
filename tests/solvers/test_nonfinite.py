"""NaN/Inf is an error naming where it happened, never a silent no-op (δ = 0, h = 0)."""

import pickle

import pytest
import torch

from solvers import NonFiniteError, gradient, newton, refine, sample
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
        refine(denoiser, bad, x_t, 601, iterations=5, direction=direction)
    message = str(info.value)
    assert message.startswith("timestep 601, iteration 3 of 5: the constraint error e is NaN/Inf")
    assert "a bad constraint?" in message
    assert (info.value.timestep, info.value.iteration, info.value.step) == (601, 2, None)


def test_refine_raises_on_an_inf_residual_even_after_the_last_iteration(problem):
    denoiser, _, constraint, x_t = problem
    for bad_call, where in ((2, "iteration 2 of 3"), (4, r"after the last iteration \(3\)")):
        bad = poisoned_constraint(constraint, bad_call, where="residual", value=float("inf"))
        with pytest.raises(NonFiniteError, match=f"^timestep 601, {where}: the constraint resid"):
            refine(denoiser, bad, x_t, 601, iterations=3)


def test_refine_raises_on_nan_x0_and_nan_x_t(problem):
    denoiser, _, constraint, x_t = problem
    bad = PoisonedDenoiser(denoiser, 601)
    with pytest.raises(NonFiniteError, match="^timestep 601, iteration 1 of 2: x̂0 is NaN/Inf"):
        refine(bad, constraint, x_t, 601, iterations=2)
    with pytest.raises(NonFiniteError, match="the model diverged"):  # float64: no float16 hint
        refine(bad, constraint, x_t, 601, iterations=0)
    nan_x_t = x_t.clone()
    nan_x_t[1] = float("nan")
    with pytest.raises(NonFiniteError, match=r"^timestep 601, .*x_t is NaN/Inf \(64 of 128"):
        refine(denoiser, constraint, nan_x_t, 601, iterations=2)


def test_a_float16_overflow_suggests_float32(problem):
    _, _, constraint, x_t = problem

    def overflowing(x, t):
        return x * 1e5  # beyond float16's 65504

    def half_constraint(x0):
        e, r = constraint(x0.double())
        return e.to(x0.dtype), r

    with pytest.raises(NonFiniteError, match=r"x̂0 is NaN/Inf .* float16 overflow.*--dtype float32"):
        refine(overflowing, half_constraint, x_t.half() + 1, 601, iterations=1)


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
    kwargs = dict(scheduler=scheduler, x_t=x_t, num_inference_steps=5, iterations=2, disable=True)
    with pytest.raises(NonFiniteError) as info:
        sample(bad, constraint, **kwargs)
    assert str(info.value).startswith(
        f"step 3 of 5 (timestep {timesteps[2]}), iteration 1 of 2: x̂0 is NaN/Inf"
    )
    assert (info.value.step, info.value.timestep, info.value.iteration) == (2, timesteps[2], 0)


def test_sample_names_the_step_of_a_nan_constraint_error(problem):
    denoiser, scheduler, constraint, x_t = problem
    kwargs = dict(scheduler=scheduler, x_t=x_t, num_inference_steps=5, iterations=2, disable=True)
    # three constraint calls per step (before each iteration, after the last): call 8 is step 3's
    # second iteration
    bad = poisoned_constraint(constraint, 8)
    with pytest.raises(NonFiniteError, match=r"^step 3 of 5 \(timestep \d+\), iteration 2 of 2: "):
        sample(denoiser, bad, **kwargs)
    # restarts are named too
    bad = poisoned_constraint(constraint, 3 * 5 + 1)
    with pytest.raises(NonFiniteError, match=r"^restart 1, step \d of 5 .*iteration 1 of 2"):
        sample(denoiser, bad, restarts=1, generator=torch.Generator().manual_seed(0), **kwargs)


def test_a_normal_oracle_run_is_unaffected(problem):
    denoiser, scheduler, constraint, x_t = problem
    kwargs = dict(scheduler=scheduler, x_t=x_t, num_inference_steps=5, iterations=2, disable=True)
    out = sample(denoiser, constraint, **kwargs)
    assert torch.isfinite(out.sample).all() and out.residuals.shape == (5, 3, 2)
    # a constraint that is already met (e = 0) is not an error: h = 0 as before
    zero = sample(denoiser, lambda x0: (torch.zeros_like(x0), torch.zeros(2)), **kwargs)
    assert torch.isfinite(zero.sample).all() and (zero.residuals == 0).all()
