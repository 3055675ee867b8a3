"""The constrained sampler: K direction iterations per step, then a scheduler step (Algorithm 1).

For each sampling step t (any diffusers scheduler; the backends pass DDIM, or flow-matching Euler
for rectified-flow models), K times:
``e = constraint(x̂0)`` → ``h = direction(e)`` → ``x_t ← x_t + λ_k·h`` → recompute x̂0; then
``scheduler.step`` with the model output that reproduces the final x̂0. Warm restarts (§4.1)
re-noise the result to an intermediate step and run again. The loop reads nothing back to the
host: the timesteps are read once, the NaN/Inf checks once at the end (a
:class:`~solvers.errors.NonFiniteError` then names the first step, timestep and iteration that
went bad). Progress is reported through ``callback``; bars belong to the caller.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ._checks import check_tensor
from .errors import SCHEDULER_OUTPUT, FiniteGuard
from .options import SampleOptions
from .parameterization import DenoiserFn, add_noise, output_from_x0, scheduler_prediction_type
from .refine import ConstraintFn, refine


@dataclass
class SampleOutput:
    """Result of :func:`sample`.

    Attributes:
        sample: the final sample (model space).
        x0: the last x̂0 prediction, after the last step's iterations.
        nfe: denoiser forward evaluations.
        backward: backward passes through the denoiser (gradient direction only).
        residuals: constraint residual per step and iteration, shape (steps, K+1, B), on the CPU:
            column k < K is measured before iteration k, column K after the last iteration.
            Steps of warm restarts follow the first run's.
        timesteps: the timestep of every row of ``residuals``.
    """

    sample: torch.Tensor
    x0: torch.Tensor
    nfe: int
    backward: int
    residuals: torch.Tensor
    timesteps: list[int | float] = field(default_factory=list)


def initial_noise(
    scheduler: Any,
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Pure noise to start :func:`sample` from: ``randn(shape) · scheduler.init_noise_sigma``."""
    noise = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)
    return noise * scheduler.init_noise_sigma


def _step_kwargs(scheduler: Any, eta: float, generator: torch.Generator | None) -> dict:
    params = inspect.signature(scheduler.step).parameters
    kwargs: dict[str, Any] = {}
    if "eta" in params:
        kwargs["eta"] = eta
    elif eta:
        raise ValueError(f"eta: {type(scheduler).__name__}.step takes no eta")
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


def _input_scale(scheduler: Any, t: int | float, like: torch.Tensor) -> torch.Tensor:
    """Factor c with ``x_t = c·sample`` (k-diffusion-style schedulers scale their model input)."""
    scale_model_input = getattr(scheduler, "scale_model_input", None)
    if scale_model_input is None:
        return torch.ones((), dtype=like.dtype, device=like.device)
    return scale_model_input(torch.ones((), dtype=like.dtype, device=like.device), t)


def sample(
    denoiser: DenoiserFn,
    constraint: ConstraintFn,
    x_t: torch.Tensor,
    options: SampleOptions | None = None,
    *,
    scheduler: Any = None,
    start_step: int = 0,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
) -> SampleOutput:
    """Sample under a constraint with inexact Newton (or gradient) iterations (Algorithm 1, §4.1).

    Args:
        denoiser: ``x0_hat(x_t, t)``; a :class:`~solvers.parameterization.Denoiser` also supplies
            its scheduler.
        constraint: ``constraint(x0) -> (e, residual)``.
        x_t: the starting latent in the scheduler's sample space at ``start_step`` (from pure
            noise: :func:`initial_noise`).
        options: steps, warm restarts, η and the inner loop's :class:`~solvers.RefineOptions`.
        scheduler: a diffusers scheduler (default: ``denoiser.scheduler``); ``set_timesteps``
            here, stepped with the model output that reproduces the current x̂0.
        start_step: index into the scheduler's timesteps where ``x_t`` lives.
        generator: seeds the scheduler's noise, restarts and perturbations.
        callback: called after every step with a dict (step, steps, total, timestep, x_t, x0,
            sample, residual, nfe, restart); ``total`` counts the steps of the whole run.

    Raises:
        NonFiniteError: NaN/Inf in x̂0, the constraint's ``e`` or residual, a direction or the
            scheduler's output; the message names the step, the timestep and the iteration.
    """
    options = options or SampleOptions()
    scheduler = scheduler if scheduler is not None else getattr(denoiser, "scheduler", None)
    if scheduler is None:
        raise ValueError("scheduler: required when the denoiser carries none")
    x = check_tensor("x_t", x_t)
    scheduler.set_timesteps(options.steps, device=x.device)
    timesteps = scheduler.timesteps.tolist()  # read once: the loop passes numbers
    if not 0 <= start_step < len(timesteps):
        raise ValueError(
            f"start_step: expected 0 ≤ start_step < {len(timesteps)}, got {start_step}"
        )
    step_kwargs = _step_kwargs(scheduler, options.eta, generator)
    prediction_type = scheduler_prediction_type(scheduler)
    guard = FiniteGuard()
    again = min(len(timesteps) - 1, round((1.0 - options.restart_strength) * len(timesteps)))
    plan = [start_step] + [again] * options.restarts
    total = sum(len(timesteps) - first for first in plan)
    nfe = backward = 0
    rows: list[torch.Tensor] = []
    row_timesteps: list[int | float] = []
    x0 = x
    for restart, first in enumerate(plan):
        if restart > 0:  # warm restart: re-noise the last result to an intermediate step
            scheduler.set_timesteps(options.steps, device=x.device)
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            t0 = timesteps[first]
            x = add_noise(x, noise, t0, scheduler) / _input_scale(scheduler, t0, x)
        for i in range(first, len(timesteps)):
            t = timesteps[i]
            guard.at(step=i, steps=len(timesteps), restart=restart)
            scale = _input_scale(scheduler, t, x)
            refined = refine(
                denoiser,
                constraint,
                x * scale,
                t,
                options.refine,
                generator=generator,
                guard=guard,
            )
            xt, x0 = refined.x_t, refined.x0
            nfe += refined.nfe
            backward += refined.backward
            rows.append(refined.residuals)
            row_timesteps.append(t)
            output = output_from_x0(x0, xt, t, scheduler, prediction_type)
            x = scheduler.step(output, t, xt / scale, **step_kwargs).prev_sample
            guard.at(iteration=None).check(x, SCHEDULER_OUTPUT, t)
            if callback is not None:
                callback(
                    {
                        "step": i,
                        "steps": len(timesteps),
                        "total": total,
                        "timestep": t,
                        "x_t": xt,
                        "x0": x0,
                        "sample": x,
                        "residual": refined.residuals[-1],
                        "nfe": nfe,
                        "restart": restart,
                    }
                )
    guard.raise_if_bad()
    return SampleOutput(
        sample=x,
        x0=x0,
        nfe=nfe,
        backward=backward,
        residuals=torch.stack(rows).cpu(),
        timesteps=row_timesteps,
    )


__all__ = ["ConstraintFn", "SampleOutput", "initial_noise", "sample"]
