"""Super-resolution with inexact-Newton steps (§4.1): the API behind ``layerdecomp superres``.

The low-resolution image is the measurement ``y`` of the ``downsample`` constraint
(``y = Down_s(D(x̂0))``, antialiased bicubic); :func:`solvers.sample` runs from pure noise with the
authors' setting (20 steps, K = 10, constant λ = 0.1). The output is ``scale`` times the input; if
that is not a multiple of the model's size multiple, the model runs at the next size that is (the
input resized to match) and the result is resized back. With ``tile``, the output is made of
overlapping tiles of that side, solved in batches and blended (:mod:`.tiles`).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from kornia.geometry.transform import resize
from PIL import Image

from ..constraints.downsample import METHODS, Downsample, Method
from ..io import image_to_tensor, load_image, to_rgb
from ..models.base import Backend
from . import tiles
from .config import SamplingConfig, configure
from .generate import ConstrainedOutput, ImageLike, from_tiles, generate, round_up, sample_decoded


@dataclass(frozen=True)
class SuperresConfig(SamplingConfig):
    """Parameters of :func:`superres` (the authors' setting: K = 10, constant λ = 0.1).

    Attributes:
        scale: the integer upscaling factor (4 or 8 in the paper).
        method: the error direction: ``"backprop"`` (decoder backprop) or ``"vae_newton"`` (a
            finite difference through the encoder, no backward pass at all).
        lam: the constant step size λ.
        perturbation: std of the noise added around x̂0 before the error (§4.1); 0 = off.
        tile: side in output pixels of overlapping tiles (0 = one piece); use the model's
            native size for images far above it.
        tile_batch: tiles solved in one batch.
    """

    iterations: int = 10
    scale: int = 4
    method: Method = "backprop"
    lam: float = 0.1
    perturbation: float = 0.0
    tile: int = 0
    tile_batch: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale < 2:
            raise ValueError(f"scale: expected an integer ≥ 2, got {self.scale!r}")
        if self.method not in METHODS:
            raise ValueError(f"method: {self.method!r} is not one of {', '.join(METHODS)}")
        if self.lam < 0 or self.perturbation < 0 or self.tile < 0 or self.tile_batch < 1:
            raise ValueError("lam, perturbation and tile must be ≥ 0, tile_batch ≥ 1")


def superres(
    backend: Backend,
    image: ImageLike,
    *,
    config: SuperresConfig | None = None,
    seed: int | None = None,
    num_samples: int = 1,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    **overrides: Any,
) -> ConstrainedOutput:
    """Upscale ``image`` by ``scale`` with inexact-Newton steps under ``y = Down_s(D(x̂0))`` (§4.1).

    Args:
        backend: a loaded model (:func:`layerdecomp.models.load_model`).
        image: the low-resolution image (PIL or path; any mode).
        config: the parameters (:class:`SuperresConfig`); keyword ``overrides`` naming its
            fields replace them (``scale=8``); other keywords go to :func:`solvers.sample`.
        seed: seeds the noise; ``None`` draws one (recorded).
        num_samples, callback, disable_progress: see :func:`~.generate.generate` (tiled runs
            draw one sample).

    Raises:
        InputError: a bad scale or method.
    """
    start = time.perf_counter()
    config, sample_kwargs = configure(SuperresConfig, config, overrides)
    scale = config.scale
    rgb = to_rgb(image if isinstance(image, Image.Image) else load_image(image))
    width, height = rgb.size
    size = (width * scale, height * scale)
    step = math.lcm(backend.size_multiple, scale)
    work = (round_up(size[0], step), round_up(size[1], step))
    low = image_to_tensor(rgb)
    low_work = (work[0] // scale, work[1] // scale)
    if low_work != (width, height):
        low = resize(low, (low_work[1], low_work[0]), interpolation="bicubic", antialias=True)
    extra = {"input_size": [width, height]}
    if config.tile and (config.tile < work[0] or config.tile < work[1]):
        return _tiled(
            backend, low, config, work, size, seed, extra, start, disable_progress, sample_kwargs
        )
    constraint = Downsample(low.to(backend.device), scale, codec=backend, method=config.method)
    return generate(
        backend,
        constraint,
        work,
        config,
        size=size,
        seed=seed,
        num_samples=num_samples,
        callback=callback,
        disable_progress=disable_progress,
        parameters=extra,
        started=start,
        lam="constant",
        lam_start=config.lam,
        perturbation=config.perturbation,
        **sample_kwargs,
    )


def _tiled(backend, low, config, work, size, seed, extra, start, disable, sample_kwargs):
    """Solve overlapping output tiles of side ``config.tile`` in batches and blend them."""
    scale = config.scale
    side = tiles.tile_side(config.tile, math.lcm(backend.size_multiple, scale))
    overlap = tiles.tile_side(side // 4, scale) if side > scale else 0
    placed = tiles.boxes(work, side, overlap)
    patches = [
        low[:, :, t // scale : b // scale, lt // scale : r // scale] for lt, t, r, b in placed
    ]
    seed = secrets.randbits(32) if seed is None else int(seed)
    runs = []

    def run(rows: slice, index: int):
        y = torch.cat(patches[rows]).to(backend.device)
        constraint = Downsample(y, scale, codec=backend, method=config.method)
        left, top, right, bottom = placed[rows.start]
        out = sample_decoded(
            backend,
            constraint,
            (right - left, bottom - top),
            config,
            seed=seed + index,
            num_samples=y.shape[0],
            disable_progress=disable,
            lam="constant",
            lam_start=config.lam,
            perturbation=config.perturbation,
            **sample_kwargs,
        )
        runs.append(out)
        return out.pixels

    prepared = time.perf_counter()
    pieces = tiles.in_batches(len(placed), config.tile_batch, run)
    sampled = time.perf_counter()
    pixels = tiles.blend(pieces, placed, work, overlap)
    extra = {**extra, "tiles": len(placed), "tile_side": side, "tile_overlap": overlap}
    times = (start, prepared, sampled)
    return from_tiles(runs, pixels, work, size, config, seed, extra, sample_kwargs, times)


__all__ = ["SuperresConfig", "superres"]
