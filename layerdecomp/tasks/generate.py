"""The shared constrained-generation driver: constraint → sample → decode → resize (§4.1).

:func:`generate` runs :func:`solvers.sample` from pure noise under any constraint built with
``codec=backend``, decodes, and resizes to the output size; ``inpaint``, ``superres``, ``style``
and plugin constraints (``layerdecomp run``) all go through it.
"""

from __future__ import annotations

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

from ..codecs import Backend
from ..constraints.base import Constraint
from ..io import check_pixels, tensor_to_image
from ..models import free_model_hooks
from ..options import as_dict
from . import tiles
from .config import SamplingConfig

ImageLike = Image.Image | str | os.PathLike


@dataclass
class ConstrainedOutput:
    """Result of :func:`~.superres.superres`, :func:`~.style.stylize` and :func:`generate`.

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

    def record(self) -> dict[str, Any]:
        """What ``run.json`` records of the result: parameters, seed, sizes, NFE, timings and the
        residual history (the caller adds where it ran)."""
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


@dataclass
class Decoded:
    """What :func:`sample_decoded` returns: decoded pixels (B, 3, H, W) at the work size, on the
    CPU, plus the solver's counts and residuals."""

    pixels: torch.Tensor
    nfe: int
    backward: int
    residuals: torch.Tensor
    timesteps: list[int | float]


def progress(disable: bool | None, callback: Callable[[dict], None] | None = None):
    """A :func:`solvers.sample` callback that draws a tqdm bar (sized by the first report) and
    then calls ``callback``; ``close()`` it when the run ends."""
    from tqdm.auto import tqdm

    bar = tqdm(disable=disable, desc="sampling", leave=False)

    def report(info: dict) -> None:
        if bar.total is None:
            bar.reset(total=info["total"])
        bar.update(1)
        if callback is not None:
            callback(info)

    report.close = bar.close  # type: ignore[attr-defined]
    return report


def sample_decoded(
    backend: Backend,
    constraint: Constraint,
    work_size: tuple[int, int],
    config: SamplingConfig,
    *,
    seed: int,
    num_samples: int = 1,
    x_t: torch.Tensor | None = None,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    free_hooks: bool = True,
) -> Decoded:
    """Run :func:`solvers.sample` under ``constraint`` (from pure noise drawn with ``seed``, or
    from ``x_t``) and decode (no resizing); then, as a diffusers pipeline call ends, its
    pipeline's offloaded models go back to the CPU (:func:`~layerdecomp.models.free_model_hooks`;
    ``free_hooks=False`` leaves that to a caller that runs several batches, once at its end).

    Raises:
        InputError: NaN or Inf in the decoded pixels.
        solvers.NonFiniteError: NaN or Inf in x̂0 or the constraint error during sampling.
    """
    multiple = backend.size_multiple
    if any(s % multiple for s in work_size):
        raise ValueError(f"work_size: {work_size} is not a multiple of {multiple}")
    if num_samples < 1:
        raise ValueError(f"num_samples: expected ≥ 1, got {num_samples}")
    shape = backend.latent_shape(num_samples, work_size[1], work_size[0])
    denoiser = backend.denoiser(config.prompt, config.negative_prompt, config.guidance, shape=shape)
    generator = torch.Generator(device=backend.device).manual_seed(int(seed))
    if x_t is None:
        x_t = solvers.initial_noise(
            denoiser.scheduler, shape, generator=generator, device=backend.device
        )
    report = progress(disable_progress, callback)
    try:
        result = solvers.sample(
            denoiser, constraint, x_t, config.sampling, generator=generator, callback=report
        )
        with torch.no_grad():
            decoded = check_pixels(backend.decode(result.sample).float(), "the decoded sample")
    finally:  # one pipeline call's worth: a user's offloaded models go back to the CPU
        report.close()
        if free_hooks:
            free_model_hooks(backend)
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
    config: SamplingConfig,
    *,
    size: tuple[int, int] | None = None,
    seed: int | None = None,
    num_samples: int = 1,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    parameters: dict[str, Any] | None = None,
    started: float | None = None,
) -> ConstrainedOutput:
    """Sample under ``constraint`` at ``work_size`` (W, H) and decode, resized to ``size``.

    Args:
        backend: a loaded model.
        constraint: any constraint built with ``codec=backend``.
        work_size: the (width, height) the model runs at (a multiple of ``size_multiple``).
        config: the conditioning and the sampler's options (a :class:`SamplingConfig`).
        size: the output (width, height); default ``work_size``.
        seed: seeds the noise; ``None`` draws one (recorded).
        num_samples: samples drawn in one batched run.
        callback: called after every sampling step (:func:`solvers.sample`'s report).
        disable_progress: hide the progress bar.
        parameters: recorded in the output (the caller's own arguments).
        started: ``time.perf_counter()`` when the caller began (for ``prepare`` timing).
    """
    start = time.perf_counter() if started is None else started
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
        parameters=recorded_parameters(config, seed, num_samples, parameters),
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
        parameters=recorded_parameters(config, seed, 1, parameters),
        timings={
            "prepare": prepared - start,
            "sample": sampled - prepared,
            "decode": done - sampled,
            "total": done - start,
        },
    )


def solve_tiles(
    backend: Backend,
    config: SamplingConfig,
    placed: list[tiles.Box],
    constraint_for: Callable[[slice], Constraint],
    seed: int,
    disable: bool | None,
) -> tuple[torch.Tensor, list[Decoded]]:
    """Sample the tiles ``placed`` (work-size boxes of one size) in batches of
    ``config.tile_batch``, each batch under ``constraint_for(rows)``; the k-th batch is seeded
    with ``seed + k``; a user's offloaded models go back to the CPU once, at the end, not after
    every batch. Returns the decoded tiles (N, 3, h, w) and each batch's :class:`Decoded`."""
    runs: list[Decoded] = []

    def run(rows: slice, index: int) -> torch.Tensor:
        left, top, right, bottom = placed[rows.start]
        constraint = constraint_for(rows)
        out = sample_decoded(
            backend,
            constraint,
            (right - left, bottom - top),
            config,
            seed=seed + index,
            num_samples=rows.stop - rows.start,
            disable_progress=disable,
            free_hooks=False,
        )
        runs.append(out)
        return out.pixels

    try:
        return tiles.in_batches(len(placed), config.tile_batch, run), runs
    finally:  # the whole tiled run is one pipeline call's worth: the models go back once
        free_model_hooks(backend)


def recorded_parameters(config, seed, num_samples, parameters) -> dict[str, Any]:
    """Every parameter of a run, JSON-ready: the config's options by name, the seed, the
    caller's extras."""
    return {**as_dict(config), **(parameters or {}), "seed": seed, "num_samples": num_samples}


__all__ = [
    "ConstrainedOutput",
    "Decoded",
    "ImageLike",
    "from_tiles",
    "generate",
    "progress",
    "recorded_parameters",
    "sample_decoded",
    "solve_tiles",
]
