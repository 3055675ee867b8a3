"""K direction iterations at one noise level: the inner loop of Algorithm 1.

``e = constraint(x̂0)`` → ``h = direction(e)`` → ``x_t ← x_t + λ_k·h`` → recompute x̂0, K times.
:func:`solvers.sample` runs it at every sampling step; the layer engine runs it at a single
noise level and keeps x̂0 (§4.2).

NaN/Inf in x_t, x̂0, the constraint's error or residual, or a direction raises
:class:`~solvers.errors.NonFiniteError` naming the timestep and the iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ._checks import batch_amax, check_like, check_tensor
from .directions import get_direction
from .errors import CONSTRAINT_RESIDUAL, X0, X_T, NonFiniteError, check_finite
from .parameterization import DenoiserFn
from .schedules import LambdaSchedule, dynamic_step, step_sizes

ConstraintFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``constraint(x0) -> (e, residual)``: error direction (model space), per-sample residual (B,)."""

StepScale = Literal["max", "error"]


@dataclass
class RefineOutput:
    """Result of :func:`refine`.

    Attributes:
        x_t: the moved latent.
        x0: x̂0(x_t) after the last iteration.
        nfe: denoiser forward evaluations (1 + 2K for Newton when ``x0`` was not given).
        backward: backward passes through the denoiser (gradient direction only).
        residuals: (K+1, B): before each iteration, then after the last one.
    """

    x_t: torch.Tensor
    x0: torch.Tensor
    nfe: int
    backward: int
    residuals: torch.Tensor


def evaluate(constraint: ConstraintFn, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Call ``constraint`` and check its outputs: e like x0, one finite residual per sample.

    Raises :class:`~solvers.errors.NonFiniteError` (without a timestep: the caller adds it) when
    the residual holds NaN/Inf; a non-finite ``e`` is refused by the direction that uses it.
    """
    batch = x0.shape[0]
    e, residual = constraint(x0)
    check_like("constraint error", e, x0, "x0")
    residual = torch.as_tensor(residual).detach().reshape(-1)
    if residual.numel() == 1 and batch > 1:
        residual = residual.expand(batch)
    if residual.numel() != batch:
        raise ValueError(f"constraint residual: expected {batch} values, got {residual.numel()}")
    check_finite(residual, CONSTRAINT_RESIDUAL)
    return e, residual


def check_options(iterations: int, step_scale: str, perturbation: float) -> None:
    """Validate the options shared by :func:`refine` and :func:`solvers.sample`."""
    if not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations: expected a non-negative int, got {iterations!r}")
    if step_scale not in ("max", "error"):
        raise ValueError(f"step_scale: {step_scale!r} is not one of 'max', 'error'")
    if perturbation < 0:
        raise ValueError(f"perturbation: expected ≥ 0, got {perturbation}")


def refine(
    denoiser: DenoiserFn,
    constraint: ConstraintFn,
    x_t: torch.Tensor,
    t: int | torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    iterations: int = 5,
    direction: str = "newton",
    lam: LambdaSchedule = "linear",
    lam_start: float = 0.5,
    lam_end: float = 0.1,
    delta0: float = 0.005,
    step_scale: StepScale = "max",
    perturbation: float = 0.0,
    generator: torch.Generator | None = None,
) -> RefineOutput:
    """Move ``x_t`` at timestep ``t`` toward satisfying ``constraint`` (Algorithm 1's inner loop).

    Args:
        denoiser: ``x0_hat(x_t, t)``.
        constraint: ``constraint(x0) -> (e, residual)``.
        x_t: batched latents (B, ...), in the denoiser's input scale.
        t: the timestep.
        x0: x̂0(x_t) if already known.
        iterations: K.
        direction: ``"newton"`` (J·e, finite differences) or ``"gradient"`` (Jᵀe, backprop).
        lam: step-size rule, see :func:`solvers.schedules.step_sizes`.
        lam_start, lam_end: the linear schedule's end points (``constant`` uses ``lam_start``,
            ``dynamic`` uses ``lam_start / max|h|``).
        delta0: finite-difference scale, δ = delta0 / max|e|.
        step_scale: ``"max"`` moves x_t by ``λ·h/max|h|`` (the paper); ``"error"`` by
            ``λ·max|e|·h/max|h|``, so steps shrink as the constraint is met and the residual
            falls monotonically near convergence instead of oscillating at the scale of λ.
        perturbation: std of Gaussian noise added around x̂0 before computing the error direction
            (the paper's super-resolution perturbation); residuals stay unperturbed.
        generator: seeds the perturbation noise.

    Raises:
        NonFiniteError: NaN/Inf in ``x_t``, x̂0, the constraint's ``e`` or residual, or ``h``; the
            message names the timestep and the iteration (:func:`solvers.sample` adds the step).
    """
    check_tensor("x_t", x_t)
    check_options(iterations, step_scale, perturbation)
    direction_fn = get_direction(direction)
    lams = step_sizes(lam, iterations, lam_start=lam_start, lam_end=lam_end)
    nfe = backward = 0
    k = 0  # the iteration under way, for the error message
    try:
        check_finite(x_t, X_T, t)
        if x0 is None:
            with torch.no_grad():
                x0 = denoiser(x_t, t)
            nfe += 1
        check_finite(x0, X0, t)
        residuals = []
        for k in range(iterations):
            e, residual = evaluate(constraint, x0)
            residuals.append(residual)
            if perturbation > 0:
                noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
                e, _ = evaluate(constraint, x0 + perturbation * noise)
            result = direction_fn(
                denoiser, x_t, t, e, x0=x0, delta0=delta0, normalize=lams is not None
            )
            nfe += result.nfe
            backward += result.backward
            step = lams[k] if lams is not None else dynamic_step(result.h, lam_start)
            if step_scale == "error":
                step = step * batch_amax(e)
            x_t = x_t + step * result.h
            with torch.no_grad():
                x0 = check_finite(denoiser(x_t, t), X0, t)
            nfe += 1
        k = iterations
        residuals.append(evaluate(constraint, x0)[1])
    except NonFiniteError as exc:
        exc.locate(timestep=float(t), iteration=k, iterations=iterations)
        raise
    return RefineOutput(
        x_t=x_t, x0=x0, nfe=nfe, backward=backward, residuals=torch.stack(residuals).cpu()
    )
