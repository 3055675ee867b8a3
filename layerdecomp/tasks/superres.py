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

from solvers import SampleOptions, Schedule
from solvers.options import option

from ..codecs import Backend
from ..constraints.downsample import Downsample, Method
from ..io import check_image_size, image_to_tensor, load_image, to_rgb
from ..options import configure
from . import tiles
from .config import SamplingConfig, sampling
from .generate import ConstrainedOutput, ImageLike, from_tiles, generate, solve_tiles
from .tiles import round_up


@dataclass(frozen=True)
class SuperresConfig(SamplingConfig):
    """Parameters of :func:`superres` (the authors' setting: K = 10, constant λ = 0.1):
    :class:`SamplingConfig`, then the factor, the error direction and the tiling."""

    sampling: SampleOptions = option(
        factory=lambda: sampling(iters=10, lam=Schedule("constant", 0.1)),
        help="The constrained sampler.",
    )
    scale: int = option(4, "Integer upscaling factor (4 or 8 in the paper).", ge=2)
    method: Method = option(
        "backprop",
        "Error direction: decoder backprop, or a finite difference through the encoder "
        "(vae_newton).",
    )
    tile: int = option(0, "Side in output pixels of overlapping tiles; " + tiles.TILE_HELP, ge=0)
    tile_batch: int = option(16, "Tiles solved in one batch.", ge=1)


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
        config: the parameters (:class:`SuperresConfig`); keyword ``overrides`` name its
            options (``scale=8``, ``iters=5``).
        seed: seeds the noise; ``None`` draws one (recorded).
        num_samples, callback, disable_progress: see :func:`~.generate.generate` (tiled runs
            draw one sample).

    Raises:
        InputError: a bad scale or method.
    """
    start = time.perf_counter()
    config = configure(SuperresConfig, config, overrides)
    scale = config.scale
    rgb = to_rgb(image if isinstance(image, Image.Image) else load_image(image))
    width, height = rgb.size
    check_image_size(rgb.size, backend.factor, "superres", scale=scale)
    size = (width * scale, height * scale)
    step = math.lcm(backend.size_multiple, scale)
    work = (round_up(size[0], step), round_up(size[1], step))
    low = image_to_tensor(rgb)
    low_work = (work[0] // scale, work[1] // scale)
    if low_work != (width, height):
        low = resize(low, (low_work[1], low_work[0]), interpolation="bicubic", antialias=True)
    extra = {"input_size": [width, height]}
    if config.tile and (config.tile < work[0] or config.tile < work[1]):
        return _tiled(backend, low, config, work, size, seed, extra, start, disable_progress)
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
    )


def _tiled(backend, low, config, work, size, seed, extra, start, disable):
    """Solve overlapping output tiles of side ``config.tile`` in batches and blend them."""
    scale = config.scale
    side = tiles.round_up(config.tile, math.lcm(backend.size_multiple, scale))
    overlap = tiles.round_up(side // 4, scale) if side > scale else 0
    placed = tiles.boxes(work, side, overlap)
    patches = [
        low[:, :, t // scale : b // scale, lt // scale : r // scale] for lt, t, r, b in placed
    ]
    seed = secrets.randbits(32) if seed is None else int(seed)

    def constraint_for(rows: slice) -> Downsample:
        y = torch.cat(patches[rows]).to(backend.device)
        return Downsample(y, scale, codec=backend, method=config.method)

    prepared = time.perf_counter()
    pieces, runs = solve_tiles(backend, config, placed, constraint_for, seed, disable)
    sampled = time.perf_counter()
    pixels = tiles.blend(pieces, placed, work, overlap)
    extra = {**extra, "tiles": len(placed), "tile_side": side, "tile_overlap": overlap}
    times = (start, prepared, sampled)
    return from_tiles(runs, pixels, work, size, config, seed, extra, times)


__all__ = ["SuperresConfig", "superres"]
