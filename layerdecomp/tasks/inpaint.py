"""Inpainting with inexact-Newton steps (§4.1): the Python API behind ``layerdecomp inpaint``.

The image is resized up to the next multiple of the model's size multiple, the mask likewise (any
pixel touched by the fill region counts as fill), the ``mask`` constraint keeps the known latent
cells while :func:`solvers.sample` runs, and the decode is resized back to the original size. By
default the kept pixels are pasted back exactly, so they equal the input bit for bit. With
``tile``, overlapping tiles of that side that touch the fill region are solved in batches and
blended (:mod:`.tiles`); tiles with nothing to fill are left as they are. :func:`inpaint_batch`
sends images of one size through the sampler together (``layerdecomp inpaint --batch-images``).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from kornia.geometry.transform import resize
from PIL import Image

import solvers
from solvers.options import option

from ..codecs import Backend
from ..constraints import Mask
from ..errors import InputError
from ..io import (
    check_image_size,
    image_to_tensor,
    load_image,
    load_mask,
    mask_to_tensor,
    tensor_to_image,
    to_rgb,
)
from ..models.base import native_size
from ..options import configure
from ..worksize import resolve_side, work_side_option
from . import tiles
from .config import SamplingConfig
from .generate import (
    ConstrainedOutput,
    ImageLike,
    from_tiles,
    generate,
    recorded_parameters,
    sample_decoded,
    solve_tiles,
)
from .tiles import work_size

MaskLike = Image.Image | str | os.PathLike | torch.Tensor


@dataclass(frozen=True)
class InpaintConfig(SamplingConfig):
    """Parameters of :func:`inpaint` (the authors' setting: 20 steps, K = 5, λ 0.5 → 0.1, no
    prompt, no guidance): :class:`SamplingConfig`, then the paste-back and the tiling."""

    paste_back: bool = option(True, "Keep the unmasked pixels exactly (or show the raw decode).")
    tile: int = option(0, tiles.TILE_HELP, ge=0)
    tile_batch: int = option(16, "Tiles solved in one batch.", ge=1)
    work_side: int | None = work_side_option()


@dataclass
class InpaintOutput(ConstrainedOutput):
    """Result of :func:`inpaint`: :class:`~.generate.ConstrainedOutput` at the input's
    size, whose ``images`` have the kept pixels pasted back (by default), plus ``raw``, the
    decodes without paste-back."""

    raw: list[Image.Image] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {**super().record(), "size": list(self.size)}


def _fill_mask(mask: MaskLike, size: tuple[int, int]) -> torch.Tensor:
    """(1, 1, H, W) float mask, 1 = fill, validated against the image size."""
    if isinstance(mask, torch.Tensor):
        fill = mask.detach().float().cpu()
        while fill.dim() < 4:
            fill = fill.unsqueeze(0)
        if fill.shape[:2] != (1, 1):
            raise InputError(f"mask: expected (H, W) or (1, 1, H, W), got {tuple(mask.shape)}")
        if tuple(fill.shape[-2:]) != (size[1], size[0]):
            raise InputError(
                f"mask: size {fill.shape[-1]}x{fill.shape[-2]} does not match the image's "
                f"{size[0]}x{size[1]}"
            )
        fill = (fill >= 0.5).float()
        if not fill.any():
            raise InputError("mask: all zero, nothing to fill (1 marks the region to fill)")
        return fill
    if isinstance(mask, Image.Image):
        if mask.size != size:
            raise InputError(
                f"mask: size {mask.size[0]}x{mask.size[1]} does not match the image's "
                f"{size[0]}x{size[1]}"
            )
        fill = mask_to_tensor(mask.convert("L"))
        if not fill.any():
            raise InputError("mask: all black, nothing to fill (white marks the region to fill)")
        return fill
    return mask_to_tensor(load_mask(mask, size))


def inpaint(
    backend: Backend,
    image: ImageLike,
    mask: MaskLike,
    *,
    config: InpaintConfig | None = None,
    seed: int | None = None,
    num_samples: int = 1,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    **overrides: Any,
) -> InpaintOutput:
    """Fill the white region of ``mask`` in ``image`` (inexact-Newton inpainting, §4.1).

    Args:
        backend: a loaded model (:func:`layerdecomp.models.load_model`).
        image: a PIL image or a path; any mode and size.
        mask: white (or 1) = region to fill, black (0) = keep; a PIL image, a path, or a tensor
            (H, W) / (1, 1, H, W). Same size as the image.
        config: the parameters (:class:`InpaintConfig`); keyword ``overrides`` name its options
            (``prompt="a cat"``, ``steps=10``, ``iters=3``, ``lam="constant:0.2"``).
        seed: seeds the noise; ``None`` draws one (recorded in the output).
        num_samples: samples drawn in one batched run (tiled runs draw one).
        callback, disable_progress: passed to :func:`solvers.sample` (``disable``).

    Raises:
        InputError: a mask that does not fit the image or leaves nothing to fill, or a bad
            parameter.
    """
    start = time.perf_counter()
    config = configure(InpaintConfig, config, overrides)
    rgb, fill, work, pixels, work_fill = _prepare(backend, image, mask, config)
    width, height = rgb.size
    extra = {"paste_back": config.paste_back}
    if config.tile and (config.tile < work[0] or config.tile < work[1]):
        out = _tiled(
            backend,
            pixels,
            work_fill,
            config,
            work,
            (width, height),
            seed,
            extra,
            start,
            disable_progress,
        )
    else:
        device = backend.device
        constraint = Mask(pixels.to(device), (1.0 - work_fill).to(device), codec=backend)
        out = generate(
            backend,
            constraint,
            work,
            config,
            size=(width, height),
            seed=seed,
            num_samples=num_samples,
            callback=callback,
            disable_progress=disable_progress,
            parameters=extra,
            started=start,
        )
    images = _pasted(rgb, fill, out.images) if config.paste_back else out.images
    return InpaintOutput(**{**vars(out), "images": images}, raw=out.images)


def inpaint_batch(
    backend: Backend,
    images: Sequence[ImageLike],
    masks: Sequence[MaskLike],
    *,
    config: InpaintConfig | None = None,
    seed: int | None = None,
    disable_progress: bool | None = None,
    **overrides: Any,
) -> list[InpaintOutput]:
    """Inpaint images of one size as one batch: every denoiser call takes them all.

    Each image starts from the noise a run of it alone starts from (a generator seeded with
    ``seed``), so a batch of one gives :func:`inpaint`'s result bit for bit, and in a larger batch
    an image's result differs from its run alone by the batched network's rounding only, which
    the sampler's iterations amplify (mini at 20 steps × K = 5: tens of levels in a few percent
    of the filled pixels, as a 1e-6 change of the starting noise does); the kept pixels are
    pasted back exactly either way. ``nfe``, ``backward`` and ``timings`` of each
    output are the batch's; ``parameters["batch_images"]`` is its size.

    Args:
        backend, config, seed, disable_progress, overrides: as :func:`inpaint`.
        images, masks: as many masks as images, each of its image's size.

    Raises:
        InputError: images of different sizes, a mask that does not fit, a tiled config (a
            tiled image is inpainted alone: its tiles are the batch), or ``restarts`` (or
            ``eta``, ``perturbation``) with more than one image: they draw noise for the batch
            as a whole, so an image's result would depend on the others in it.
    """
    start = time.perf_counter()
    config = configure(InpaintConfig, config, overrides)
    count = len(images)
    if count == 0 or len(masks) != count:
        raise ValueError(f"masks: expected one per image, got {len(masks)} for {count} images")
    options = config.sampling
    noisy = options.restarts or options.eta or options.refine.perturbation
    if count > 1 and noisy:
        raise InputError(
            "restarts: a warm restart (like eta and perturbation) draws noise for the whole "
            "batch, so an image's result would depend on the others in it; inpaint these "
            "images one at a time"
        )
    prepared = [
        _prepare(backend, image, mask, config) for image, mask in zip(images, masks, strict=True)
    ]
    sizes = sorted({rgb.size for rgb, *_ in prepared})
    if len(sizes) > 1:
        raise InputError(f"images: one batch takes images of one size, got {sizes}")
    size, work = sizes[0], prepared[0][2]
    if config.tile and (config.tile < work[0] or config.tile < work[1]):
        raise InputError("tile: a tiled image is inpainted alone (its tiles make the batch)")
    seed = secrets.randbits(32) if seed is None else int(seed)
    device = backend.device
    generator = torch.Generator(device=device).manual_seed(seed)
    shape = backend.latent_shape(1, work[1], work[0])
    noise = solvers.initial_noise(backend.scheduler, shape, generator=generator, device=device)
    constraint = Mask(
        torch.cat([p[3] for p in prepared]).to(device),
        torch.cat([1.0 - p[4] for p in prepared]).to(device),
        codec=backend,
    )
    ready = time.perf_counter()
    out = sample_decoded(
        backend,
        constraint,
        work,
        config,
        seed=seed,
        num_samples=count,
        disable_progress=disable_progress,
        x_t=noise.repeat(count, 1, 1, 1),
    )
    sampled = time.perf_counter()
    decoded = out.pixels
    if size != work:
        decoded = resize(decoded, (size[1], size[0]), interpolation="bicubic", antialias=True)
    raws = [tensor_to_image(decoded[i]) for i in range(count)]
    done = time.perf_counter()
    extra = {"paste_back": config.paste_back, "batch_images": count}
    parameters = recorded_parameters(config, seed, 1, extra)
    timings = {"prepare": ready - start, "sample": sampled - ready, "decode": done - sampled}
    timings["total"] = done - start
    return [
        InpaintOutput(
            images=_pasted(rgb, fill, [raw]) if config.paste_back else [raw],
            nfe=out.nfe,
            backward=out.backward,
            residuals=out.residuals[:, :, i : i + 1],
            timesteps=out.timesteps,
            seed=seed,
            size=size,
            work_size=work,
            timings=timings,
            parameters=parameters,
            raw=[raw],
        )
        for i, (raw, (rgb, fill, *_)) in enumerate(zip(raws, prepared, strict=True))
    ]


def work_size_for(backend: Backend, size: tuple[int, int], config: InpaintConfig):
    """(width, height) the model inpaints an image of ``size`` at: ``work_side``
    (:func:`layerdecomp.worksize.resolve_side`: by default the model's native side, untiled),
    rounded up to the model's multiple."""
    native = native_size(backend, default=None)
    side = resolve_side(config.work_side, native, tiled=bool(config.tile))
    return work_size(size, side, backend.size_multiple)


def _prepare(backend: Backend, image: ImageLike, mask: MaskLike, config: InpaintConfig):
    """(rgb, fill, work size, pixels, fill) of one image: the RGB image and its (1, 1, H, W)
    fill mask at its size, then its pixels and fill resized to the work size (a fill pixel
    touched counts)."""
    source = image if isinstance(image, Image.Image) else load_image(image)
    rgb = to_rgb(source)
    width, height = rgb.size
    check_image_size(rgb.size, backend.factor, "inpaint")
    fill = _fill_mask(mask, rgb.size)
    work = work_size_for(backend, rgb.size, config)
    pixels = image_to_tensor(rgb)
    work_fill = fill
    if work != (width, height):
        shape = (work[1], work[0])
        pixels = resize(pixels, shape, interpolation="bilinear", antialias=True)
        work_fill = (resize(fill, shape, interpolation="bilinear", antialias=True) > 0).float()
    return rgb, fill, work, pixels, work_fill


def _pasted(rgb: Image.Image, fill: torch.Tensor, images: list[Image.Image]) -> list[Image.Image]:
    """``images`` with the kept pixels of ``rgb`` (where ``fill`` is 0) copied in exactly."""
    keep = ~fill[0, 0].bool().numpy()[..., None]
    original = np.asarray(rgb)
    return [Image.fromarray(np.where(keep, original, np.asarray(r))) for r in images]


def _tiled(backend, pixels, fill, config, work, size, seed, extra, start, disable):
    """Inpaint the tiles of side ``config.tile`` that touch the fill region; blend them."""
    side = tiles.round_up(config.tile, backend.size_multiple)
    overlap = tiles.round_up(side // 4, backend.size_multiple) if side > 4 else 0
    placed = [
        box
        for box in tiles.boxes(work, side, overlap)
        if fill[:, :, box[1] : box[3], box[0] : box[2]].any()
    ]
    crop = [(slice(t, b), slice(lt, r)) for lt, t, r, b in placed]
    seed = secrets.randbits(32) if seed is None else int(seed)

    def constraint_for(rows: slice) -> Mask:
        image = torch.cat([pixels[:, :, ys, xs] for ys, xs in crop[rows]]).to(backend.device)
        known = torch.cat([1.0 - fill[:, :, ys, xs] for ys, xs in crop[rows]]).to(backend.device)
        return Mask(image, known, codec=backend)

    prepared = time.perf_counter()
    pieces, runs = solve_tiles(backend, config, placed, constraint_for, seed, disable)
    sampled = time.perf_counter()
    # Pixels no tile covers have nothing to fill: they keep the input.
    blended = tiles.blend(pieces, placed, work, overlap)
    covered = tiles.blend(torch.ones_like(pieces[:, :1]), placed, work, overlap) > 0.5
    pixels = torch.where(covered, blended, pixels)
    extra = {**extra, "tiles": len(placed), "tile_side": side, "tile_overlap": overlap}
    times = (start, prepared, sampled)
    return from_tiles(runs, pixels, work, size, config, seed, extra, times)


__all__ = ["InpaintConfig", "InpaintOutput", "inpaint", "inpaint_batch"]
