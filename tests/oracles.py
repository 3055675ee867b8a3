"""Exact oracles for the solvers: linear denoisers with known Jacobians and conditional means."""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler


def ddim_scheduler(**overrides) -> DDIMScheduler:
    """Stable Diffusion's DDIM configuration (scaled-linear betas, leading spacing)."""
    config = dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=1,
    )
    config.update(overrides)
    return DDIMScheduler(**config)


def rbf_covariance(side: int, length: float = 3.0, variance: float = 0.25, nugget: float = 1e-4):
    """Covariance of a smooth Gaussian random field on a side×side grid (float64)."""
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    points = torch.stack([ys.flatten(), xs.flatten()], 1).double()
    d2 = torch.cdist(points, points).pow(2)
    return variance * torch.exp(-d2 / (2 * length**2)) + nugget * torch.eye(side * side).double()


class GaussianDenoiser:
    """x0 ~ N(μ, Σ) on flattened images: the exact posterior mean E[x0 | x_t] under DDPM noise.

    ``J = √ᾱ·Σ·(ᾱΣ + (1−ᾱ)I)⁻¹`` is symmetric (Σ and (ᾱΣ + (1−ᾱ)I)⁻¹ commute).
    """

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, shape, scheduler) -> None:
        self.mean, self.cov, self.shape, self.scheduler = mean, cov, tuple(shape), scheduler
        self.calls = 0

    def jacobian(self, t) -> torch.Tensor:
        abar = float(self.scheduler.alphas_cumprod[int(t)])
        eye = torch.eye(self.cov.shape[0], dtype=self.cov.dtype)
        return abar**0.5 * self.cov @ torch.linalg.inv(abar * self.cov + (1 - abar) * eye)

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        self.calls += 1
        abar = float(self.scheduler.alphas_cumprod[int(t)])
        flat = x_t.reshape(x_t.shape[0], -1).to(self.cov.dtype)
        x0 = self.mean + (flat - abar**0.5 * self.mean) @ self.jacobian(t).T
        return x0.reshape(x_t.shape).to(x_t.dtype)

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor:
        chol = torch.linalg.cholesky(self.cov)
        z = torch.randn(n, self.cov.shape[0], generator=generator, dtype=self.cov.dtype)
        return (self.mean + z @ chol.T).reshape(n, *self.shape)


class LinearDenoiser:
    """x̂0 = A·x_t + b with a dense, non-symmetric A: J = A, so J·e ≠ Jᵀe."""

    def __init__(self, matrix: torch.Tensor, bias: torch.Tensor, shape) -> None:
        self.matrix, self.bias, self.shape = matrix, bias, tuple(shape)

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        flat = x_t.reshape(x_t.shape[0], -1)
        return (flat @ self.matrix.T.to(flat.dtype) + self.bias.to(flat.dtype)).reshape(x_t.shape)


def mask_constraint(y: torch.Tensor, known: torch.Tensor):
    """``e = m ⊙ (y − x̂0)``, residual = RMS over the known entries (per sample)."""

    def constraint(x0: torch.Tensor):
        e = known * (y - x0)
        residual = (e.pow(2).flatten(1).sum(1) / known.expand_as(e).flatten(1).sum(1)).sqrt()
        return e, residual

    return constraint
