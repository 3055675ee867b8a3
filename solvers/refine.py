"""K direction iterations at one noise level: the inner loop of Algorithm 1.

``e = constraint(x̂0)`` → ``h = direction(e)`` → ``x_t ← x_t + λ_k·h`` → recompute x̂0, K times.
:func:`solvers.sample` runs it at every sampling step; the layer engine runs it at a single
noise level and keeps x̂0 (§4.2). The loop never reads a tensor back to the host: NaN/Inf checks
go to a :class:`~solvers.errors.FiniteGuard`, read once by whoever owns it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._checks import batch_amax, check_like, check_tensor
from .directions import KEEPS_GRAPH, get_direction
from .errors import CONSTRAINT_RESIDUAL, X0, X_T, FiniteGuard
from .options import RefineOptions
from .parameterization import DenoiserFn
from .schedules import dynamic_step

ConstraintFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``constraint(x0) -> (e, residual)``: error direction (model space), per-sample residual (B,)."""


@dataclass
class RefineOutput:
    """Result of :func:`refine`.

    Attributes:
        x_t: the moved latent.
        x0: x̂0(x_t) after the last iteration.
        nfe: denoiser forward evaluations when ``x0`` was not given: 1 + 2K for Newton, 1 + K
            for the gradient (each x̂0 keeps its graph for the next backward).
        backward: backward passes through the denoiser (gradient direction only).
        residuals: (K+1, B), on the latent's device: before each iteration, then after the last.
    """

    x_t: torch.Tensor
    x0: torch.Tensor
    nfe: int
    backward: int
    residuals: torch.Tensor


def evaluate(
    constraint: ConstraintFn, x0: torch.Tensor, guard: FiniteGuard
) -> tuple[torch.Tensor, torch.Tensor]:
    """Call ``constraint`` and check its outputs: e like x0, one finite residual per sample (the
    finiteness through ``guard``; a non-finite ``e`` is caught by the direction that uses it)."""
    batch = x0.shape[0]
    e, residual = constraint(x0)
    check_like("constraint error", e, x0, "x0")
    residual = torch.as_tensor(residual).detach().reshape(-1)
    if residual.numel() == 1 and batch > 1:
        residual = residual.expand(batch)
    if residual.numel() != batch:
        raise ValueError(f"constraint residual: expected {batch} values, got {residual.numel()}")
    guard.check(residual, CONSTRAINT_RESIDUAL)
    return e, residual


def refine(
    denoiser: DenoiserFn,
    constraint: ConstraintFn,
    x_t: torch.Tensor,
    t: int | float,
    options: RefineOptions | None = None,
    *,
    x0: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    guard: FiniteGuard | None = None,
) -> RefineOutput:
    """Move ``x_t`` at timestep ``t`` toward satisfying ``constraint`` (Algorithm 1's inner loop).

    Args:
        denoiser: ``x0_hat(x_t, t)``.
        constraint: ``constraint(x0) -> (e, residual)``.
        x_t: batched latents (B, ...), in the denoiser's input scale.
        t: the timestep, a number (a tensor would be read back to the host at every call).
        options: K, the direction, λ, δ0, the step scale, the perturbation.
        x0: x̂0(x_t) if already known.
        generator: seeds the perturbation noise.
        guard: where the NaN/Inf checks go; by default refine's own, read once at its end.

    Raises:
        NonFiniteError: NaN/Inf in ``x_t``, x̂0, the constraint's ``e`` or residual, or ``h``; the
            message names the timestep and the iteration (:func:`solvers.sample` adds the step).
    """
    options = options or RefineOptions()
    check_tensor("x_t", x_t)
    own = guard is None
    guard = FiniteGuard() if own else guard
    direction = get_direction(options.direction)
    lams, iters = options.step_sizes(), options.iters
    graph = options.direction in KEEPS_GRAPH

    def denoise(x: torch.Tensor, keep: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """x̂0(x), with its graph from a fresh leaf x when ``keep`` (for the next direction)."""
        if not keep:
            with torch.no_grad():
                return x, denoiser(x, t)
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            return x, denoiser(x, t)

    nfe = backward = 0
    guard.at(timestep=t, iteration=0, iterations=iters).check(x_t, X_T, t)
    if x0 is None:
        x_t, x0 = denoise(x_t, graph and iters > 0)
        nfe += 1
    guard.check(x0.detach(), X0, t)
    residuals = []
    for k in range(iters):
        guard.at(iteration=k)
        e, residual = evaluate(constraint, x0.detach(), guard)
        residuals.append(residual)
        if options.perturbation > 0:
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            e, _ = evaluate(constraint, x0.detach() + options.perturbation * noise, guard)
        result = direction(
            denoiser,
            x_t,
            t,
            e,
            x0=x0,
            delta0=options.delta0,
            normalize=lams is not None,
            guard=guard,
        )
        nfe += result.nfe
        backward += result.backward
        step = lams[k] if lams is not None else dynamic_step(result.h, options.lam.start)
        if options.step_scale == "error":
            step = step * batch_amax(e)
        x_t, x0 = denoise(x_t.detach() + step * result.h, graph and k < iters - 1)
        guard.check(x0.detach(), X0, t)
        nfe += 1
    x_t, x0 = x_t.detach(), x0.detach()
    guard.at(iteration=iters)
    residuals.append(evaluate(constraint, x0, guard)[1])
    if own:
        guard.raise_if_bad()
    return RefineOutput(
        x_t=x_t, x0=x0, nfe=nfe, backward=backward, residuals=torch.stack(residuals)
    )


__all__ = ["ConstraintFn", "RefineOutput", "evaluate", "refine"]
