"""K iterations at one noise level (the layer engine's use of the solver)."""

import pytest
import torch

from solvers import RefineOptions, gradient, refine
from tests.oracles import GaussianDenoiser, ddim_scheduler, mask_constraint, rbf_covariance


@pytest.fixture(scope="module")
def problem():
    scheduler = ddim_scheduler()
    denoiser = GaussianDenoiser(
        torch.zeros(64, dtype=torch.float64), rbf_covariance(8), (1, 8, 8), scheduler
    )
    truth = denoiser.sample_prior(4, torch.Generator().manual_seed(0))
    known = (torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.5).double()
    x_t = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return denoiser, mask_constraint(truth * known, known), x_t


@pytest.mark.parametrize("direction", ["newton", "gradient"])
def test_refine_lowers_the_residual_at_one_noise_level(problem, direction):
    denoiser, constraint, x_t = problem
    options = RefineOptions(iters=8, direction=direction, step_scale="error")
    out = refine(denoiser, constraint, x_t, 601, options)
    assert out.residuals.shape == (9, 4)
    assert (out.residuals[-1] < 0.5 * out.residuals[0]).all()
    # Newton: two forwards an iteration; the gradient: one forward (kept with its graph) and
    # one backward
    assert out.nfe == {"newton": 1 + 2 * 8, "gradient": 1 + 8}[direction]
    assert out.backward == {"newton": 0, "gradient": 8}[direction]
    assert torch.allclose(out.x0, denoiser(out.x_t, 601))
    assert not out.x_t.requires_grad and not out.x0.requires_grad


def test_the_gradient_refine_is_dps_with_one_forward_per_iteration(problem):
    """Reusing x̂0's graph changes the cost, not the result: the same iterates as a loop that
    calls the gradient direction on a fresh forward every time, with K forwards fewer."""
    denoiser, constraint, x_t = problem
    calls = []

    def counted(x, t):
        calls.append(torch.is_grad_enabled() and x.requires_grad)
        return denoiser(x, t)

    options = RefineOptions(iters=4, direction="gradient")
    out = refine(counted, constraint, x_t, 601, options)
    assert calls == [True] * 4 + [False]  # x̂0 with a graph for each backward, then the last
    reference = x_t
    for lam in options.step_sizes():
        e, _ = constraint(denoiser(reference, 601))
        h = gradient(denoiser, reference, 601, e).h  # its own forward with a graph
        reference = reference + lam * h
    torch.testing.assert_close(out.x_t, reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.x0, denoiser(reference, 601), rtol=0, atol=1e-12)


def test_refine_reuses_a_given_x0_and_zero_iterations_is_identity(problem):
    denoiser, constraint, x_t = problem
    out = refine(denoiser, constraint, x_t, 601, RefineOptions(iters=3), x0=denoiser(x_t, 601))
    assert out.nfe == 2 * 3
    same = refine(denoiser, constraint, x_t, 601, RefineOptions(iters=0))
    assert torch.equal(same.x_t, x_t) and same.nfe == 1 and same.residuals.shape == (1, 4)


def test_refine_residuals_stay_on_the_latents_device(problem):
    denoiser, constraint, x_t = problem
    out = refine(denoiser, constraint, x_t, 601, RefineOptions(iters=2))
    assert out.residuals.device == x_t.device and out.residuals.dtype == x_t.dtype


def test_refine_validates_its_options(problem):
    """The options refuse bad values when built (naming the field), before refine runs."""
    denoiser, constraint, x_t = problem
    with pytest.raises(ValueError, match="^iters"):
        RefineOptions(iters=-1)
    with pytest.raises(ValueError, match="^step_scale"):
        RefineOptions(step_scale="mean")
    with pytest.raises(ValueError, match="^perturbation"):
        RefineOptions(perturbation=-0.1)
    with pytest.raises(ValueError, match="^x_t: expected a torch.Tensor"):
        refine(denoiser, constraint, x_t.numpy(), 601)
