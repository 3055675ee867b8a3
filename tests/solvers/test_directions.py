"""Finite-difference J·e and autograd Jᵀe against exact Jacobians (§3, eq. 9–10; Algorithm 1)."""

import pytest
import torch

from solvers import gradient, newton
from tests.oracles import GaussianDenoiser, LinearDenoiser, ddim_scheduler

SHAPE = (1, 4, 4)
D = 16


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture
def gaussian():
    g = torch.Generator().manual_seed(0)
    root = torch.randn(D, D, generator=g, dtype=torch.float64)
    cov = root @ root.T / D + 0.1 * torch.eye(D, dtype=torch.float64)
    mean = torch.randn(D, generator=g, dtype=torch.float64)
    return GaussianDenoiser(mean, cov, SHAPE, ddim_scheduler())


@pytest.fixture
def linear():
    g = torch.Generator().manual_seed(1)
    matrix = torch.randn(D, D, generator=g, dtype=torch.float64) / D**0.5
    return LinearDenoiser(matrix, torch.randn(D, generator=g, dtype=torch.float64), SHAPE)


def batch(generator_seed=2, scales=(1.0, 1e-3, 50.0)):
    g = torch.Generator().manual_seed(generator_seed)
    x_t = torch.randn(len(scales), *SHAPE, generator=g, dtype=torch.float64)
    e = torch.randn(len(scales), *SHAPE, generator=g, dtype=torch.float64)
    return x_t, e * torch.tensor(scales, dtype=torch.float64).view(-1, 1, 1, 1)


def analytic(jacobian: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    return (e.reshape(e.shape[0], -1) @ jacobian.T).reshape(e.shape)


@pytest.mark.parametrize("t", [901, 501, 21])
def test_newton_matches_analytic_jacobian_vector_product(gaussian, t):
    x_t, e = batch()
    out = newton(gaussian, x_t, t, e, normalize=False)
    expected = analytic(gaussian.jacobian(t), e)
    for i in range(e.shape[0]):  # per sample, whatever the scale of e
        assert rel_err(out.h[i], expected[i]) <= 1e-6
    assert out.nfe == 2 and out.backward == 0
    assert out.h.grad_fn is None


def test_gradient_matches_analytic_transpose_product(gaussian):
    x_t, e = batch()
    out = gradient(gaussian, x_t, 501, e, normalize=False)
    expected = analytic(gaussian.jacobian(501).T, e)
    assert rel_err(out.h, expected) <= 1e-10
    assert out.nfe == 1 and out.backward == 1


def test_symmetric_jacobian_gives_equal_directions(gaussian):
    x_t, e = batch()
    assert torch.allclose(gaussian.jacobian(301), gaussian.jacobian(301).T, atol=1e-12)
    h_newton = newton(gaussian, x_t, 301, e).h
    h_grad = gradient(gaussian, x_t, 301, e).h
    assert rel_err(h_newton, h_grad) <= 1e-6


def test_non_symmetric_denoiser_separates_the_directions(linear):
    x_t, e = batch()
    h_newton = newton(linear, x_t, 0, e, normalize=False).h
    h_grad = gradient(linear, x_t, 0, e, normalize=False).h
    assert rel_err(h_newton, analytic(linear.matrix, e)) <= 1e-6
    assert rel_err(h_grad, analytic(linear.matrix.T, e)) <= 1e-10
    assert rel_err(h_newton, h_grad) > 0.3


@pytest.mark.parametrize("direction", [newton, gradient])
def test_normalisation_is_per_sample(linear, direction):
    x_t, e = batch()
    h = direction(linear, x_t, 0, e).h
    assert torch.allclose(h.abs().flatten(1).amax(1), torch.ones(3, dtype=torch.float64))
    for i in range(3):  # the same as a batch of one
        alone = direction(linear, x_t[i : i + 1], 0, e[i : i + 1]).h
        assert torch.allclose(h[i : i + 1], alone, rtol=1e-6, atol=1e-9)


def test_newton_reuses_a_given_x0_and_zero_error_gives_zero(linear):
    x_t, e = batch()
    e[1] = 0.0
    x0 = linear(x_t, 0)
    out = newton(linear, x_t, 0, e, x0=x0)
    assert out.nfe == 1
    assert torch.equal(out.h[1], torch.zeros_like(out.h[1]))
    assert torch.isfinite(out.h).all()


@pytest.mark.parametrize("direction", [newton, gradient])
def test_validation_names_the_argument(linear, direction):
    x_t, e = batch()
    with pytest.raises(ValueError, match="^e: shape"):
        direction(linear, x_t, 0, e[:, :, :2])
    with pytest.raises(ValueError, match="^e: dtype"):
        direction(linear, x_t, 0, e.float())
    with pytest.raises(ValueError, match="^x0: shape"):
        direction(linear, x_t, 0, e, x0=x_t[:1])
    with pytest.raises(ValueError, match="^x_t: expected a torch.Tensor"):
        direction(linear, x_t.numpy(), 0, e)
