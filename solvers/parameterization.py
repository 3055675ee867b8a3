"""The denoiser contract ``x0_hat(x_t, t)`` and conversions between model outputs and x̂0 (§2.1).

A diffusion model predicts ε, v, the clean sample, or (rectified flow) a velocity. Every solver
in this package only needs ``x0_hat(x_t, t)``; these helpers convert a raw model output into x̂0
given a diffusers scheduler's schedule, and back (a scheduler's ``step`` expects its own
parameterisation). Only torch is imported: schedulers are duck-typed.

Schedules:
    * DDPM-type (``alphas_cumprod``): ``x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε``.
    * flow (``FlowMatch*`` schedulers): ``x_t = (1−σ)·x0 + σ·noise`` with ``σ = t / T``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, Protocol

import torch

PredictionType = Literal["epsilon", "v_prediction", "sample", "flow"]
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "v_prediction", "sample", "flow")


class DenoiserFn(Protocol):
    """The one contract every backend adapts to: ``x0_hat(x_t, t) -> x̂0``, same shape as x_t."""

    def __call__(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor: ...


def is_flow_scheduler(scheduler: object) -> bool:
    """True for rectified-flow schedulers (no ``alphas_cumprod``; timesteps are σ·T)."""
    return not hasattr(scheduler, "alphas_cumprod") or "FlowMatch" in type(scheduler).__name__


def scheduler_prediction_type(scheduler: object) -> str:
    """The parameterisation a scheduler's ``step`` expects as ``model_output``."""
    if is_flow_scheduler(scheduler):
        return "flow"
    config = getattr(scheduler, "config", None)
    return getattr(config, "prediction_type", None) or "epsilon"


def _alpha_bar(scheduler: object, t: int | torch.Tensor) -> float:
    """ᾱ_t as a Python float; the schedule's values are read once per ``alphas_cumprod`` tensor
    and kept on the scheduler."""
    index = int(t.item()) if isinstance(t, torch.Tensor) else int(t)
    alphas_cumprod = scheduler.alphas_cumprod  # type: ignore[attr-defined]
    cached = getattr(scheduler, "_solvers_alpha_bars", None)
    if cached is None or cached[0] is not alphas_cumprod:
        cached = (alphas_cumprod, alphas_cumprod.double().tolist())
        scheduler._solvers_alpha_bars = cached  # type: ignore[attr-defined]
    return cached[1][index]


def _coefficients(scheduler: object, t, like: torch.Tensor) -> tuple[float, float]:
    """Return (a, b) with ``x_t = a·x0 + b·noise`` at timestep ``t``, as numbers: no tensor is
    made or moved per call (a host-to-device copy would wait on the device)."""
    if is_flow_scheduler(scheduler):
        value = float(t.item()) if isinstance(t, torch.Tensor) else float(t)
        sigma = value / float(scheduler.config.num_train_timesteps)  # type: ignore[attr-defined]
        return 1.0 - sigma, sigma
    alpha_bar = _alpha_bar(scheduler, t)
    return math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)


def _half_safe(coefficients: tuple[float, float], like: torch.Tensor) -> tuple[float, float]:
    """The coefficients as ``like``'s kernels will see them. A float32 or float64 kernel rounds a
    Python number to its own precision, as the tensors of that dtype these used to be; half
    precision computes in float32, so the numbers are rounded to the half type first."""
    if like.dtype in (torch.float16, torch.bfloat16):
        rounded = torch.tensor(coefficients, dtype=torch.float64).to(like.dtype).tolist()
        return rounded[0], rounded[1]
    return coefficients


def x0_from_output(
    output: torch.Tensor,
    x_t: torch.Tensor,
    t: int | torch.Tensor,
    scheduler: object,
    prediction_type: str,
) -> torch.Tensor:
    """Convert a model output of ``prediction_type`` at ``(x_t, t)`` into x̂0."""
    a, b = _half_safe(_coefficients(scheduler, t, x_t), x_t)
    if prediction_type == "epsilon":
        return (x_t - b * output) / a
    if prediction_type == "v_prediction":
        return a * x_t - b * output
    if prediction_type == "sample":
        return output
    if prediction_type == "flow":  # v = noise − x0 and x_t = (1−σ)x0 + σ·noise  ⇒  x0 = x_t − σv
        return x_t - b * output
    raise ValueError(f"prediction_type: {prediction_type!r} is not one of {PREDICTION_TYPES}")


def output_from_x0(
    x0: torch.Tensor,
    x_t: torch.Tensor,
    t: int | torch.Tensor,
    scheduler: object,
    prediction_type: str,
) -> torch.Tensor:
    """Inverse of :func:`x0_from_output`: the model output that yields ``x0`` at ``(x_t, t)``."""
    a, b = _half_safe(_coefficients(scheduler, t, x_t), x_t)
    if prediction_type == "sample":
        return x0
    noise = (x_t - a * x0) / b
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return a * noise - b * x0
    if prediction_type == "flow":
        return noise - x0
    raise ValueError(f"prediction_type: {prediction_type!r} is not one of {PREDICTION_TYPES}")


def add_noise(
    x0: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor, scheduler: object
) -> torch.Tensor:
    """Diffuse ``x0`` to timestep ``t``: ``a_t·x0 + b_t·noise`` for the scheduler's schedule."""
    a, b = _half_safe(_coefficients(scheduler, t, x0), x0)
    return a * x0 + b * noise


class Denoiser:
    """Adapt a raw model ``model_fn(x_t, t) -> output`` to the x̂0 contract.

    Args:
        model_fn: the network with conditioning and guidance already bound.
        scheduler: a diffusers scheduler; supplies the schedule and is the sampler's default.
        prediction_type: what ``model_fn`` predicts; defaults to the scheduler's own.
    """

    def __init__(
        self,
        model_fn: Callable[[torch.Tensor, int | torch.Tensor], torch.Tensor],
        scheduler: object,
        prediction_type: str | None = None,
    ) -> None:
        self.model_fn = model_fn
        self.scheduler = scheduler
        self.prediction_type = prediction_type or scheduler_prediction_type(scheduler)
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type: {self.prediction_type!r} is not one of {PREDICTION_TYPES}"
            )

    def __call__(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        output = self.model_fn(x_t, t)
        return x0_from_output(output, x_t, t, self.scheduler, self.prediction_type)
