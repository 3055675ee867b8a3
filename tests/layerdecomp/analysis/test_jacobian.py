"""``layerdecomp.analysis.jacobian`` on linear denoisers whose Jacobians are known exactly.

A non-normal matrix (eigenvalues on its diagonal, symmetric and skew parts known from the dense
matrix) and the exact Gaussian posterior mean (a symmetric J that depends on t).
"""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from layerdecomp.analysis import (
    MAX_EXACT,
    centre_cell,
    check_timesteps,
    column_and_row,
    default_timesteps,
    diffuse,
    spectrum_row,
    timestep_range,
)
from layerdecomp.errors import InputError
from tests.oracles import GaussianDenoiser, LinearDenoiser, ddim_scheduler, rbf_covariance

SHAPE = (2, 4, 4)
N = 32
EIGENVALUES = (5.0, -3.0, 2.0)


def non_normal() -> torch.Tensor:
    """Q·(D + U)·Qᵀ: eigenvalues D = 5, −3, 2, then (−0.5, 0.5); U strictly upper triangular."""
    g = torch.Generator().manual_seed(4)
    d = torch.cat([torch.tensor(EIGENVALUES), torch.rand(N - 3, generator=g) - 0.5]).double()
    upper = torch.triu(torch.randn(N, N, generator=g, dtype=torch.float64), 1) * 0.3
    q, _ = torch.linalg.qr(torch.randn(N, N, generator=g, dtype=torch.float64))
    return q @ (torch.diag(d) + upper) @ q.T


def linear_denoiser(matrix: torch.Tensor) -> LinearDenoiser:
    denoiser = LinearDenoiser(matrix, torch.zeros(N, dtype=torch.float64), SHAPE)
    denoiser.scheduler = ddim_scheduler()  # what diffuse needs of a solvers.Denoiser
    return denoiser


def latent(shape=SHAPE, seed: int = 1) -> torch.Tensor:
    return torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed)).double()


def test_spectrum_row_recovers_a_non_normal_spectrum():
    matrix = non_normal()
    krylov, probes = N, 64
    row = spectrum_row(
        linear_denoiser(matrix), latent(), 700, krylov=krylov, probes=probes, seed=3, exact=True
    )
    symmetric = torch.linalg.eigvalsh((matrix + matrix.T) / 2).abs().max().item()
    skew = torch.linalg.eigvals((matrix - matrix.T) / 2).abs().max().item()
    ratio = ((matrix - matrix.T).norm() / matrix.norm()).item()
    expected = {"jacobian": 5.0, "symmetric": symmetric, "skew": skew}
    assert row.t == 700
    assert row.top == pytest.approx(expected, rel=1e-6)
    assert row.exact == pytest.approx({**expected, "asymmetry": ratio}, rel=1e-9)
    dense = sorted(row.exact_eigenvalues.real.tolist(), key=abs, reverse=True)[:3]
    assert dense == pytest.approx(EIGENVALUES, rel=1e-9)
    assert row.ritz[:3].real.tolist() == pytest.approx(EIGENVALUES, rel=1e-6)
    assert abs(row.asymmetry - ratio) < 4 * row.asymmetry_stderr < 0.2 * ratio
    assert row.nfe == 1 + 3 * 2 * krylov + 2 * probes  # the graph; J·v twice per part; probes
    assert row.backward == 2 * krylov + probes
    assert row.seconds > 0
    record = json.loads(json.dumps(row.record(ritz=3)))
    assert record["top"] == row.top and record["exact"] == row.exact
    assert [complex(*z) for z in record["ritz"]] == row.ritz[:3].tolist()


def test_the_jacobian_is_taken_at_the_row_timestep():
    """The Gaussian posterior mean: J(t) = √ᾱ·Σ·(ᾱΣ + (1−ᾱ)I)⁻¹, symmetric, different per t."""
    side = 6
    scheduler = ddim_scheduler()
    cov = rbf_covariance(side)
    gaussian = GaussianDenoiser(
        torch.zeros(side * side, dtype=torch.float64), cov, (1, side, side), scheduler
    )
    clean = latent((1, side, side))
    for t in (900, 300):
        row = spectrum_row(gaussian, clean, t, krylov=side * side, probes=4, seed=0)
        top = torch.linalg.eigvalsh(gaussian.jacobian(t)).abs().max().item()
        assert row.top["jacobian"] == pytest.approx(top, rel=1e-6)
        assert row.top["symmetric"] == pytest.approx(top, rel=1e-6)
        assert row.top["skew"] < 1e-6 * top and row.asymmetry < 1e-6


def test_the_seed_fixes_the_noise_and_the_probes():
    matrix = non_normal()
    runs = [
        spectrum_row(linear_denoiser(matrix), latent(), 500, krylov=4, probes=3, seed=s)
        for s in (7, 7, 8)
    ]
    assert runs[0].top == runs[1].top and runs[0].asymmetry == runs[1].asymmetry
    assert runs[0].asymmetry != runs[2].asymmetry  # other probes, another estimate
    assert runs[0].top != runs[2].top  # another start vector, other Ritz values after 4 steps


def test_diffuse_adds_the_same_noise_at_every_t():
    scheduler = ddim_scheduler()
    denoiser = linear_denoiser(non_normal())
    clean = latent()
    noises = []
    for t in (900, 100):
        abar = float(scheduler.alphas_cumprod[t])
        x_t = diffuse(denoiser, clean, t, seed=5)
        noises.append((x_t - abar**0.5 * clean) / (1 - abar) ** 0.5)
    torch.testing.assert_close(noises[0], noises[1])
    expected = torch.randn(clean.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(noises[0], expected.double())


def test_column_and_row_are_a_column_and_a_row_of_j():
    matrix = non_normal()
    clean = latent()
    assert centre_cell(clean) == (0, 2, 2)
    pair = column_and_row(linear_denoiser(matrix), clean, 500, seed=2)
    i = 0 * 16 + 2 * 4 + 2
    torch.testing.assert_close(pair.column.reshape(-1), matrix[:, i])
    torch.testing.assert_close(pair.row.reshape(-1), matrix[i, :])
    cosine = torch.nn.functional.cosine_similarity(matrix[:, i], matrix[i, :], dim=0).item()
    assert pair.cosine == pytest.approx(cosine, rel=1e-6)
    assert pair.diagonal == pytest.approx(matrix[i, i].item(), rel=1e-6)
    relative = ((matrix[:, i] - matrix[i, :]).norm() / matrix[:, i].norm()).item()
    assert pair.relative == pytest.approx(relative, rel=1e-6)
    assert (pair.nfe, pair.backward) == (3, 1)  # J·e_i: 2 forward; Jᵀ·e_i: its graph, 1 backward
    other = column_and_row(linear_denoiser(matrix), clean, 500, cell=(1, 0, 3))
    torch.testing.assert_close(other.row.reshape(-1), matrix[16 + 3, :])
    with pytest.raises(ValueError, match="3 indices"):
        column_and_row(linear_denoiser(matrix), clean, 500, cell=(0, 1))


def test_timesteps_follow_the_schedule():
    ddim = ddim_scheduler()
    assert default_timesteps(ddim) == [900, 700, 500, 300]
    assert default_timesteps(ddim_scheduler(num_train_timesteps=500)) == [450, 350, 250, 150]
    assert check_timesteps([900, 0, 900, 999], ddim) == [900, 0, 999]
    assert timestep_range(ddim) == (0, 999)
    for bad in (1000, -1):
        with pytest.raises(InputError, match=f"timestep {bad} is outside .*0 to 999"):
            check_timesteps([500, bad], ddim)
    with pytest.raises(InputError, match="none given"):
        check_timesteps([], ddim)
    flow = FlowMatchEulerDiscreteScheduler(shift=3.0)
    assert timestep_range(flow) == (1, 1000)
    assert check_timesteps([1000, 1], flow) == [1000, 1]
    with pytest.raises(InputError, match="timestep 0 is outside"):
        check_timesteps([0], flow)


def test_exact_refuses_a_large_latent():
    big = torch.zeros(1, 4, 33, 32)
    assert big.numel() > MAX_EXACT
    with pytest.raises(InputError, match=f"at most {MAX_EXACT}"):
        spectrum_row(linear_denoiser(non_normal()), big, 500, exact=True)
