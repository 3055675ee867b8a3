"""The shared constrained-generation driver: constraint → sample → decode → resize (§4.1).

:func:`generate` runs :func:`solvers.sample` from pure noise under any constraint built with
``codec=backend``, decodes, and resizes to the output size; ``inpaint``, ``superres``, ``style``
and plugin constraints (``layerdecomp run``) all go through it.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from kornia.geometry.transform import resize
from PIL import Image

import solvers

from ..constraints.base import Constraint
from ..io import check_finite, tensor_to_image
from ..models.base import Backend
from .config import SamplingConfig, as_dict, configure

ImageLike = Image.Image | str | os.PathLike


@dataclass
class ConstrainedOutput:
    """Result of :func:`superres`, :func:`layerdecomp.style.stylize` and :func:`generate`.

    Attributes:
        images: the results at the output size.
        nfe: denoiser evaluations; ``backward``: backward passes through the denoiser.
        residuals: constraint residual per step and iteration, (steps, K+1, num_samples).
        timesteps: the timestep of every row of ``residuals``.
        seed: the seed that reproduces the run.
        size: (width, height) of the output; ``work_size`` the size the model ran at.
        timings: seconds spent in ``prepare``, ``sample``, ``decode`` and ``total``.
        parameters: every argument of the call, JSON-ready.
    """

    images: list[Image.Image]
    nfe: int
    backward: int
    residuals: torch.Tensor
    timesteps: list[int]
    seed: int
    size: tuple[int, int]
    work_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def image(self) -> Image.Image:
        """The first (usually only) result."""
        return self.images[0]

    def metadata(self) -> dict[str, Any]:
        """JSON-ready record: parameters, seed, sizes, NFE, timings and the residual history."""
        return {
            "parameters": self.parameters,
            "seed": self.seed,
            "output_size": list(self.size),
            "work_size": list(self.work_size),
            "nfe": self.nfe,
            "backward": self.backward,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "residuals": {
                "timesteps": self.timesteps,
                "first": self.residuals[:, 0, 0].tolist(),
                "last": self.residuals[:, -1, 0].tolist(),
                "per_iteration": self.residuals[:, :, 0].tolist(),
            },
        }


def round_up(value: int, multiple: int) -> int:
    """The smallest positive multiple of ``multiple`` that is ≥ ``value``."""
    return max(multiple, math.ceil(value / multiple) * multiple)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, int | float | str | bool | None)}


@dataclass
class Decoded:
    """What :func:`sample_decoded` returns: decoded pixels (B, 3, H, W) at the work size, on the
    CPU, plus the solver's counts and residuals."""

    pixels: torch.Tensor
    nfe: int
    backward: int
    residuals: torch.Tensor
    timesteps: list[int]


def sample_decoded(
    backend: Backend,
    constraint: Constraint,
    work_size: tuple[int, int],
    config: SamplingConfig,
    *,
    seed: int,
    num_samples: int = 1,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    **sample_kwargs: Any,
) -> Decoded:
    """Run :func:`solvers.sample` under ``constraint`` from pure noise and decode (no resizing).

    Raises:
        InputError: NaN or Inf in the decoded pixels.
        solvers.NonFiniteError: NaN or Inf in x̂0 or the constraint error during sampling.
    """
    multiple = backend.size_multiple
    if any(s % multiple for s in work_size):
        raise ValueError(f"work_size: {work_size} is not a multiple of {multiple}")
    if num_samples < 1:
        raise ValueError(f"num_samples: expected ≥ 1, got {num_samples}")
    denoiser = backend.denoiser(config.prompt, config.negative_prompt, config.guidance)
    device = backend.device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    result = solvers.sample(
        denoiser,
        constraint,
        shape=backend.latent_shape(num_samples, work_size[1], work_size[0]),
        num_inference_steps=config.steps,
        iterations=config.iterations,
        direction=config.direction,
        restarts=config.restarts,
        generator=generator,
        callback=callback,
        disable=disable_progress,
        device=device,
        dtype=torch.float32,
        **sample_kwargs,
    )
    with torch.no_grad():
        decoded = check_finite(backend.decode(result.sample).float(), "the decoded sample")
    return Decoded(
        pixels=decoded.clamp(-1, 1).cpu(),
        nfe=result.nfe,
        backward=result.backward,
        residuals=result.residuals,
        timesteps=result.timesteps,
    )


def generate(
    backend: Backend,
    constraint: Constraint,
    work_size: tuple[int, int],
    config: SamplingConfig | None = None,
    *,
    size: tuple[int, int] | None = None,
    seed: int | None = None,
    num_samples: int = 1,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    parameters: dict[str, Any] | None = None,
    started: float | None = None,
    **sample_kwargs: Any,
) -> ConstrainedOutput:
    """Sample under ``constraint`` at ``work_size`` (W, H) and decode, resized to ``size``.

    Args:
        backend: a loaded model.
        constraint: any constraint built with ``codec=backend``.
        work_size: the (width, height) the model runs at (a multiple of ``size_multiple``).
        config: prompt, guidance, steps, K iterations, direction, restarts (defaults:
            :class:`SamplingConfig`); keywords naming its fields (``steps=10``) replace them.
        size: the output (width, height); default ``work_size``.
        seed: seeds the noise; ``None`` draws one (recorded).
        num_samples: samples drawn in one batched run.
        callback, disable_progress: passed to :func:`solvers.sample` (``disable``).
        parameters: recorded in the output (the caller's arguments).
        started: ``time.perf_counter()`` when the caller began (for ``prepare`` timing).
        **sample_kwargs: further :func:`solvers.sample` options (``lam``, ``perturbation``...).
    """
    start = time.perf_counter() if started is None else started
    config, sample_kwargs = configure(SamplingConfig, config, sample_kwargs)
    size = tuple(size or work_size)
    seed = secrets.randbits(32) if seed is None else int(seed)
    prepared = time.perf_counter()
    out = sample_decoded(
        backend,
        constraint,
        work_size,
        config,
        seed=seed,
        num_samples=num_samples,
        callback=callback,
        disable_progress=disable_progress,
        **sample_kwargs,
    )
    sampled = time.perf_counter()
    decoded = out.pixels
    if size != tuple(work_size):
        decoded = resize(decoded, (size[1], size[0]), interpolation="bicubic", antialias=True)
    images = [tensor_to_image(decoded[i]) for i in range(num_samples)]
    done = time.perf_counter()
    return ConstrainedOutput(
        images=images,
        nfe=out.nfe,
        backward=out.backward,
        residuals=out.residuals,
        timesteps=out.timesteps,
        seed=seed,
        size=size,
        work_size=tuple(work_size),
        parameters=recorded_parameters(config, seed, num_samples, parameters, sample_kwargs),
        timings={
            "prepare": prepared - start,
            "sample": sampled - prepared,
            "decode": done - sampled,
            "total": done - start,
        },
    )


def from_tiles(
    runs: list[Decoded],
    pixels: torch.Tensor,
    work_size: tuple[int, int],
    size: tuple[int, int],
    config: SamplingConfig,
    seed: int,
    parameters: dict[str, Any],
    sample_kwargs: dict[str, Any],
    times: tuple[float, float, float],
) -> ConstrainedOutput:
    """The output of a tiled run: the blended ``pixels`` (1, 3, H, W) at the work size, resized to
    ``size``; NFE summed over the batches of tiles, residuals of the first batch.

    ``times`` are ``time.perf_counter()`` at the start, before and after sampling.
    """
    start, prepared, sampled = times
    pixels = pixels.clamp(-1, 1)
    if size != tuple(work_size):
        pixels = resize(pixels, (size[1], size[0]), interpolation="bicubic", antialias=True)
    image = tensor_to_image(pixels)
    done = time.perf_counter()
    return ConstrainedOutput(
        images=[image],
        nfe=sum(r.nfe for r in runs),
        backward=sum(r.backward for r in runs),
        residuals=runs[0].residuals,
        timesteps=runs[0].timesteps,
        seed=seed,
        size=size,
        work_size=tuple(work_size),
        parameters=recorded_parameters(config, seed, 1, parameters, sample_kwargs),
        timings={
            "prepare": prepared - start,
            "sample": sampled - prepared,
            "decode": done - sampled,
            "total": done - start,
        },
    )


def recorded_parameters(config, seed, num_samples, parameters, sample_kwargs) -> dict[str, Any]:
    """Every parameter of a run, JSON-ready: the config's fields, the seed, the extras."""
    return {
        **as_dict(config),
        **(parameters or {}),
        "seed": seed,
        "num_samples": num_samples,
        **_plain(sample_kwargs),
    }


__all__ = [
    "ConstrainedOutput",
    "Decoded",
    "ImageLike",
    "from_tiles",
    "generate",
    "recorded_parameters",
    "round_up",
    "sample_decoded",
]
