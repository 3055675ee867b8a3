"""K iterations at one noise level (the layer engine's use of the solver)."""

import pytest
import torch

from solvers import refine
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
    out = refine(
        denoiser, constraint, x_t, 601, iterations=8, direction=direction, step_scale="error"
    )
    assert out.residuals.shape == (9, 4)
    assert (out.residuals[-1] < 0.5 * out.residuals[0]).all()
    assert out.nfe == 1 + 2 * 8
    assert torch.allclose(out.x0, denoiser(out.x_t, 601))


def test_refine_reuses_a_given_x0_and_zero_iterations_is_identity(problem):
    denoiser, constraint, x_t = problem
    out = refine(denoiser, constraint, x_t, 601, x0=denoiser(x_t, 601), iterations=3)
    assert out.nfe == 2 * 3
    same = refine(denoiser, constraint, x_t, 601, iterations=0)
    assert torch.equal(same.x_t, x_t) and same.nfe == 1 and same.residuals.shape == (1, 4)


def test_refine_validates_its_options(problem):
    denoiser, constraint, x_t = problem
    with pytest.raises(ValueError, match="^iterations"):
        refine(denoiser, constraint, x_t, 601, iterations=-1)
    with pytest.raises(ValueError, match="^step_scale"):
        refine(denoiser, constraint, x_t, 601, step_scale="mean")
    with pytest.raises(ValueError, match="^perturbation"):
        refine(denoiser, constraint, x_t, 601, perturbation=-0.1)
