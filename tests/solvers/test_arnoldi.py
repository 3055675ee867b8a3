"""Arnoldi on the denoiser Jacobian, against linear denoisers whose spectra are known exactly.

Three oracles (``x̂0 = A·x_t + b``, so J = A): symmetric (J = Jᵀ), skew-dominated (a normal matrix
with eigenvalues a ± iω, ω ≫ a) and non-normal (a rotated triangular matrix: eigenvalues on its
diagonal, far from its singular values).
"""

import pytest
import torch

from solvers import (
    JacobianProducts,
    NonFiniteError,
    arnoldi,
    asymmetry,
    jacobian_matrix,
    jacobian_spectrum,
)
from tests.oracles import GaussianDenoiser, LinearDenoiser, ddim_scheduler

SIDE = 8
N = SIDE * SIDE
SHAPE = (1, SIDE, SIDE)


def orthogonal(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(N, N, generator=g, dtype=torch.float64))
    return q


def symmetric_matrix() -> tuple[torch.Tensor, dict[str, float]]:
    """Q·diag(d)·Qᵀ with d = 9, −6, 4, 2.5 and the rest in (−1, 1)."""
    g = torch.Generator().manual_seed(10)
    d = torch.cat([torch.tensor([9.0, -6.0, 4.0, 2.5]), torch.rand(N - 4, generator=g) * 2 - 1])
    q = orthogonal(11)
    return q @ torch.diag(d.double()) @ q.T, {"jacobian": 9.0, "symmetric": 9.0, "skew": 0.0}


def skew_dominated_matrix() -> tuple[torch.Tensor, dict[str, float]]:
    """Q·blockdiag([[a, ω], [−ω, a]])·Qᵀ: eigenvalues a ± iω, symmetric part a, skew part ±iω."""
    g = torch.Generator().manual_seed(20)
    a = torch.rand(N // 2, generator=g, dtype=torch.float64) * 0.4
    omega = torch.rand(N // 2, generator=g, dtype=torch.float64) * 2
    a[0], omega[0] = 0.3, 7.0  # the dominant pair 0.3 ± 7i
    a[1] = 0.9  # the symmetric part's top eigenvalue
    block = torch.zeros(N, N, dtype=torch.float64)
    for k in range(N // 2):
        i = 2 * k
        block[i, i] = block[i + 1, i + 1] = a[k]
        block[i, i + 1], block[i + 1, i] = omega[k], -omega[k]
    q = orthogonal(21)
    top_j = float((a**2 + omega**2).sqrt().max())
    return q @ block @ q.T, {"jacobian": top_j, "symmetric": 0.9, "skew": 7.0}


def non_normal_matrix() -> tuple[torch.Tensor, dict[str, float]]:
    """Q·(D + U)·Qᵀ, U strictly upper triangular: eigenvalues D = 8, 3, 2.5, then (−1, 1)."""
    g = torch.Generator().manual_seed(30)
    d = torch.cat([torch.tensor([8.0, 3.0, 2.5]), torch.rand(N - 3, generator=g) * 2 - 1])
    upper = torch.triu(torch.randn(N, N, generator=g, dtype=torch.float64), 1) * 0.3
    q = orthogonal(31)
    m = q @ (torch.diag(d.double()) + upper) @ q.T
    sym = torch.linalg.eigvalsh((m + m.T) / 2).abs().max().item()
    skew = torch.linalg.eigvals((m - m.T) / 2).abs().max().item()
    return m, {"jacobian": 8.0, "symmetric": sym, "skew": skew}


ORACLES = {
    "symmetric": symmetric_matrix,
    "skew-dominated": skew_dominated_matrix,
    "non-normal": non_normal_matrix,
}


def denoiser_for(matrix: torch.Tensor) -> LinearDenoiser:
    g = torch.Generator().manual_seed(5)
    return LinearDenoiser(matrix, torch.randn(N, generator=g, dtype=torch.float64), SHAPE)


def point(seed: int = 3) -> torch.Tensor:
    return torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(seed)).double()


def matvec(matrix: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (matrix @ v.reshape(-1)).reshape(v.shape)


@pytest.mark.parametrize("oracle", sorted(ORACLES))
def test_top_eigenvalues_are_recovered(oracle):
    matrix, top = ORACLES[oracle]()
    spectrum = jacobian_spectrum(
        denoiser_for(matrix), point(), 500, size=30, generator=torch.Generator().manual_seed(0)
    )
    for part, expected in top.items():
        assert spectrum.top(part) == pytest.approx(expected, rel=1e-6, abs=1e-6), part
    if oracle == "skew-dominated":  # the dominant pair itself, not only its modulus
        lead = spectrum.parts["jacobian"].eigenvalues[:2]
        assert sorted(lead.imag.tolist()) == pytest.approx([-7.0, 7.0], rel=1e-6)
        assert lead.real.tolist() == pytest.approx([0.3, 0.3], rel=1e-6)
        skew = spectrum.parts["skew"].eigenvalues[:2]
        assert skew.real.abs().max() < 1e-6  # a skew-symmetric operator: imaginary eigenvalues
    exact = torch.linalg.eigvals(matrix)
    assert spectrum.parts["jacobian"].top == pytest.approx(exact.abs().max().item(), rel=1e-6)
    assert spectrum.nfe == 1 + 2 * 30 * 3 + 2 * 16  # graph; J·v is 2 passes; the probes
    assert spectrum.backward == 30 * 2 + 16


@pytest.mark.parametrize("oracle", sorted(ORACLES))
def test_asymmetry_estimate_matches_the_frobenius_ratio(oracle):
    matrix, _ = ORACLES[oracle]()
    products = JacobianProducts(denoiser_for(matrix), point(), 500)
    ratio, stderr = asymmetry(products, probes=400, generator=torch.Generator().manual_seed(1))
    exact = ((matrix - matrix.T).norm() / matrix.norm()).item()
    if oracle == "symmetric":
        assert ratio < 1e-8 and stderr < 1e-8
    else:
        assert ratio == pytest.approx(exact, rel=0.05)
        assert 0 < stderr < 0.05 * exact
        assert abs(ratio - exact) < 4 * stderr


def test_products_are_at_the_same_timestep():
    """``J`` and ``Jᵀ`` both at t: a t-dependent Jacobian makes t−1 (the notebook's) detectable."""
    root = non_normal_matrix()[0]
    cov = root @ root.T / N + 0.1 * torch.eye(N, dtype=torch.float64)
    gaussian = GaussianDenoiser(torch.zeros(N, dtype=torch.float64), cov, SHAPE, ddim_scheduler())
    upper = torch.triu(torch.ones(N, N, dtype=torch.float64), 1)

    def jacobian(t):  # symmetric Gaussian part plus a t-dependent triangular one
        return gaussian.jacobian(t) + upper * (1 + t / 100)

    def skewed(x, t):
        return gaussian(x, t) + matvec(upper * (1 + float(t) / 100), x)

    def rel(a, b):
        return ((a - b).norm() / b.norm()).item()

    t, v = 500, point(7)
    products = JacobianProducts(skewed, point(), t)
    assert rel(products.vjp(v), matvec(jacobian(t).T, v)) < 1e-12
    assert rel(products.jvp(v), matvec(jacobian(t), v)) < 1e-8
    assert rel(products.vjp(v), matvec(jacobian(t - 1).T, v)) > 1e-4


@pytest.mark.parametrize("central, passes", [(True, 2), (False, 1)])
def test_finite_difference_products_and_their_cost(central, passes):
    matrix, _ = non_normal_matrix()
    products = JacobianProducts(denoiser_for(matrix), point(), 500, central=central)
    for scale in (1e-4, 1.0, 1e3):
        v = point(8) * scale
        expected = matvec(matrix, v)
        assert ((products.jvp(v) - expected).norm() / expected.norm()).item() < 1e-8
    assert products.nfe == 3 * passes if central else 1 + 3  # forward: x̂0(x_t) once
    assert torch.equal(products.jvp(torch.zeros_like(v)), torch.zeros_like(v))
    assert torch.allclose(products.skew(v), matvec((matrix - matrix.T) / 2, v), rtol=1e-7)
    assert torch.allclose(products.symmetric(v), matvec((matrix + matrix.T) / 2, v), rtol=1e-7)


def test_arnoldi_relation_and_ritz_residuals():
    matrix, _ = non_normal_matrix()
    start = point(9)
    result = arnoldi(lambda v: matvec(matrix, v), start, 12)
    q, h, m = result.basis, result.hessenberg, result.steps
    assert m == 12 and q.shape == (13, N) and h.shape == (13, 12)
    assert torch.allclose(q @ q.T, torch.eye(13, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(matrix @ q[:m].T, q.T @ h, atol=1e-10)
    assert torch.allclose(q[0], start.reshape(-1) / start.norm())
    values, vectors = torch.linalg.eig(h[:m, :m])
    for value, vector in zip(values, vectors.T, strict=True):
        u = q[:m].T.to(vector.dtype) @ vector
        true_residual = (matrix.to(u.dtype) @ u - value * u).norm()
        k = torch.argmin((result.eigenvalues - value).abs())
        assert result.residuals[k].item() == pytest.approx(true_residual.item(), rel=1e-6)


def test_breakdown_on_an_invariant_subspace_gives_exact_eigenvalues():
    u = orthogonal(40)[:, :3]
    matrix = u @ torch.diag(torch.tensor([5.0, 2.0, -1.0]).double()) @ u.T  # rank 3
    result = arnoldi(lambda v: matvec(matrix, v), point(), 30)
    assert result.steps == 4  # the start vector plus the three-dimensional range
    assert result.hessenberg.shape == (5, 4) and result.basis.shape == (4, N)
    assert sorted(result.eigenvalues.real.tolist()) == pytest.approx([-1, 0, 2, 5], abs=1e-9)
    assert result.residuals.abs().max() == 0


def test_dense_jacobian_is_the_matrix():
    matrix, _ = skew_dominated_matrix()
    dense = jacobian_matrix(denoiser_for(matrix), point(), 500, chunk=24)
    assert torch.allclose(dense, matrix, atol=1e-12)
    with pytest.raises(ValueError, match="one sample"):
        jacobian_matrix(denoiser_for(matrix), point().expand(2, *SHAPE), 500)


def test_bad_input_is_refused():
    matrix, _ = symmetric_matrix()
    op = lambda v: matvec(matrix, v)  # noqa: E731
    with pytest.raises(ValueError, match="size"):
        arnoldi(op, point(), 0)
    with pytest.raises(ValueError, match="non-zero"):
        arnoldi(op, torch.zeros(1, *SHAPE, dtype=torch.float64), 5)
    with pytest.raises(ValueError, match="non-zero"):
        arnoldi(op, torch.full((1, *SHAPE), float("nan"), dtype=torch.float64), 5)
    with pytest.raises(NonFiniteError):
        arnoldi(lambda v: v * float("nan"), point(), 5)
    products = JacobianProducts(denoiser_for(matrix), point(), 500)
    with pytest.raises(ValueError, match="part"):
        products.operator("hermitian")
    with pytest.raises(ValueError, match="probes"):
        asymmetry(products, probes=1)
    with pytest.raises(ValueError, match="delta0"):
        JacobianProducts(denoiser_for(matrix), point(), 500, delta0=0)
    nan_denoiser = lambda x, t: x * float("nan")  # noqa: E731
    with pytest.raises(NonFiniteError):
        JacobianProducts(nan_denoiser, point(), 500).jvp(point(2))
    with pytest.raises(NonFiniteError):
        JacobianProducts(nan_denoiser, point(), 500).vjp(point(2))
