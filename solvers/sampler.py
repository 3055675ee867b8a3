"""The constrained sampler: K direction iterations per step, then a scheduler step (Algorithm 1).

For each sampling step t (any diffusers scheduler; the backends pass DDIM, or flow-matching Euler
for rectified-flow models), K times:
``e = constraint(x̂0)`` → ``h = direction(e)`` → ``x_t ← x_t + λ_k·h`` → recompute x̂0; then
``scheduler.step`` with the model output that reproduces the final x̂0. Warm restarts (§4.1)
re-noise the result to an intermediate step and run again. NaN/Inf anywhere in the loop raises
:class:`~solvers.errors.NonFiniteError` naming the step, the timestep and the iteration.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ._checks import check_tensor
from .directions import get_direction
from .errors import SCHEDULER_OUTPUT, NonFiniteError, check_finite
from .parameterization import DenoiserFn, add_noise, output_from_x0, scheduler_prediction_type
from .refine import ConstraintFn, StepScale, check_options, refine
from .schedules import LambdaSchedule, step_sizes


@dataclass
class SampleOutput:
    """Result of :func:`sample`.

    Attributes:
        sample: the final sample (model space).
        x0: the last x̂0 prediction, after the last step's iterations.
        nfe: denoiser forward evaluations.
        backward: backward passes through the denoiser (gradient direction only).
        residuals: constraint residual per step and iteration, shape (steps, K+1, B): column k < K
            is measured before iteration k, column K after the last iteration. Steps of warm
            restarts follow the first run's.
        timesteps: the timestep of every row of ``residuals``.
    """

    sample: torch.Tensor
    x0: torch.Tensor
    nfe: int
    backward: int
    residuals: torch.Tensor
    timesteps: list[int] = field(default_factory=list)


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


def _set_timesteps(scheduler: Any, steps: int, device, sample_shape: tuple | None) -> None:
    """``set_timesteps``; a schedule that depends on the sample's size (the resolution-dependent
    shift of rectified-flow pipelines) declares ``sample_shape`` and gets it."""
    if "sample_shape" in inspect.signature(scheduler.set_timesteps).parameters:
        scheduler.set_timesteps(steps, device=device, sample_shape=sample_shape)
    else:
        scheduler.set_timesteps(steps, device=device)


def _input_scale(scheduler: Any, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Factor c with ``x_t = c·sample`` (k-diffusion-style schedulers scale their model input)."""
    scale_model_input = getattr(scheduler, "scale_model_input", None)
    if scale_model_input is None:
        return torch.ones((), dtype=like.dtype, device=like.device)
    return scale_model_input(torch.ones((), dtype=like.dtype, device=like.device), t)


def sample(
    denoiser: DenoiserFn,
    constraint: ConstraintFn,
    *,
    scheduler: Any = None,
    shape: Sequence[int] | None = None,
    x_t: torch.Tensor | None = None,
    start_step: int = 0,
    num_inference_steps: int = 20,
    iterations: int = 5,
    direction: str = "newton",
    lam: LambdaSchedule = "linear",
    lam_start: float = 0.5,
    lam_end: float = 0.1,
    delta0: float = 0.005,
    step_scale: StepScale = "max",
    eta: float = 0.0,
    restarts: int = 0,
    restart_strength: float = 0.5,
    perturbation: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> SampleOutput:
    """Sample under a constraint with inexact Newton (or gradient) iterations (Algorithm 1, §4.1).

    Args:
        denoiser: ``x0_hat(x_t, t)``; a :class:`~solvers.parameterization.Denoiser` also supplies
            its scheduler.
        constraint: ``constraint(x0) -> (e, residual)``.
        scheduler: a diffusers scheduler (default: ``denoiser.scheduler``). It is ``set_timesteps``
            here and stepped with the model output that reproduces the current x̂0.
        shape: shape of the initial noise when starting from pure noise.
        x_t: start from this latent instead (in the scheduler's sample space) at ``start_step``.
        start_step: index into the scheduler's timesteps where ``x_t`` lives.
        num_inference_steps: sampling steps (20 in the paper).
        iterations: K direction iterations per step (5 for inpainting).
        direction: ``"newton"`` (J·e, finite differences) or ``"gradient"`` (Jᵀe, backprop).
        lam: step-size rule, see :func:`solvers.schedules.step_sizes`.
        lam_start, lam_end: the linear schedule's end points (``constant`` uses ``lam_start``,
            ``dynamic`` uses ``lam_start / max|h|``).
        delta0: finite-difference scale, δ = delta0 / max|e|.
        step_scale: ``"max"`` (the paper) or ``"error"``, see :func:`solvers.refine`.
        eta: DDIM stochasticity, passed to schedulers whose ``step`` takes it.
        restarts: warm restarts after the first run (§4.1).
        restart_strength: fraction of the schedule re-run on each restart (re-noise level).
        perturbation: std of Gaussian noise added around x̂0 before computing the error direction
            (the paper's super-resolution perturbation); residuals stay unperturbed.
        generator: seeds the initial noise, the scheduler's noise, restarts and perturbations.
        callback: called after every step with a dict (step, timestep, x_t, x0, residual, nfe,
            restart).
        disable: disable the tqdm progress bar.
        dtype, device: of the initial noise when ``shape`` is given.

    Raises:
        NonFiniteError: NaN/Inf in x̂0, the constraint's ``e`` or residual, a direction or the
            scheduler's output; the message names the step, the timestep and the iteration.
    """
    if scheduler is None:
        scheduler = getattr(denoiser, "scheduler", None)
        if scheduler is None:
            raise ValueError("scheduler: required when the denoiser carries none")
    check_options(iterations, step_scale, perturbation)
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps: expected ≥ 1, got {num_inference_steps}")
    if restarts < 0:
        raise ValueError(f"restarts: expected ≥ 0, got {restarts}")
    if not 0.0 < restart_strength <= 1.0:
        raise ValueError(f"restart_strength: expected a value in (0, 1], got {restart_strength}")
    get_direction(direction)  # fail early on a bad name
    step_sizes(lam, iterations, lam_start=lam_start, lam_end=lam_end)

    sample_shape = x_t.shape if x_t is not None else shape
    sample_shape = None if sample_shape is None else tuple(sample_shape)
    _set_timesteps(
        scheduler, num_inference_steps, device if x_t is None else x_t.device, sample_shape
    )
    timesteps = list(scheduler.timesteps)
    if not 0 <= start_step < len(timesteps):
        raise ValueError(
            f"start_step: expected 0 ≤ start_step < {len(timesteps)}, got {start_step}"
        )
    if x_t is None:
        if shape is None:
            raise ValueError("shape: required when x_t is not given")
        x = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)
        x = x * scheduler.init_noise_sigma
    else:
        x = check_tensor("x_t", x_t)
        if shape is not None and tuple(shape) != tuple(x.shape):
            raise ValueError(f"shape: {tuple(shape)} does not match x_t {tuple(x.shape)}")
    step_kwargs = _step_kwargs(scheduler, eta, generator)
    prediction_type = scheduler_prediction_type(scheduler)

    nfe = backward = 0
    rows: list[torch.Tensor] = []
    row_timesteps: list[int] = []
    x0 = x
    plan = [start_step] + [
        min(len(timesteps) - 1, round((1.0 - restart_strength) * len(timesteps)))
    ] * restarts
    total = sum(len(timesteps) - s for s in plan)
    progress = _progress(total, disable)
    for restart, first in enumerate(plan):
        if restart > 0:  # warm restart: re-noise the last result to an intermediate step
            _set_timesteps(scheduler, num_inference_steps, x.device, tuple(x.shape))
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            t0 = timesteps[first]
            x = add_noise(x, noise, t0, scheduler) / _input_scale(scheduler, t0, x)
        for i in range(first, len(timesteps)):
            t = timesteps[i]
            scale = _input_scale(scheduler, t, x)
            try:
                refined = refine(
                    denoiser,
                    constraint,
                    x * scale,
                    t,
                    iterations=iterations,
                    direction=direction,
                    lam=lam,
                    lam_start=lam_start,
                    lam_end=lam_end,
                    delta0=delta0,
                    step_scale=step_scale,
                    perturbation=perturbation,
                    generator=generator,
                )
                xt, x0 = refined.x_t, refined.x0
                nfe += refined.nfe
                backward += refined.backward
                rows.append(refined.residuals)
                row_timesteps.append(int(t))
                output = output_from_x0(x0, xt, t, scheduler, prediction_type)
                x = scheduler.step(output, t, xt / scale, **step_kwargs).prev_sample
                check_finite(x, SCHEDULER_OUTPUT, t)
            except NonFiniteError as exc:
                progress.close()
                exc.locate(step=i, steps=len(timesteps), restart=restart)
                raise
            progress.update(1)
            if callback is not None:
                callback(
                    {
                        "step": i,
                        "timestep": int(t),
                        "x_t": xt,
                        "x0": x0,
                        "sample": x,
                        "residual": refined.residuals[-1],
                        "nfe": nfe,
                        "restart": restart,
                    }
                )
    progress.close()
    return SampleOutput(
        sample=x,
        x0=x0,
        nfe=nfe,
        backward=backward,
        residuals=torch.stack(rows),
        timesteps=row_timesteps,
    )


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, disable: bool | None):
    """A tqdm bar (imported lazily: the solvers' import-time dependency is torch alone)."""
    if disable:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=disable, desc="sampling", leave=False)


__all__ = ["ConstraintFn", "SampleOutput", "sample"]
