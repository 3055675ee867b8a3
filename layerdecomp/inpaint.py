"""Inpainting with inexact-Newton steps (§4.1): the Python API behind ``layerdecomp inpaint``.

The image is resized up to the next multiple of the model's size multiple, the mask likewise (any
pixel touched by the fill region counts as fill), the ``mask`` constraint keeps the known latent
cells while :func:`solvers.sample` runs, and the decode is resized back to the original size. By
default the kept pixels are pasted back exactly, so they equal the input bit for bit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from kornia.geometry.transform import resize
from PIL import Image

from .constraints import Mask
from .errors import InputError
from .generate import ConstrainedOutput, ImageLike, generate, round_up
from .io import image_to_tensor, load_image, load_mask, mask_to_tensor, to_rgb
from .models.base import Backend

MaskLike = Image.Image | str | os.PathLike | torch.Tensor


@dataclass
class InpaintOutput(ConstrainedOutput):
    """Result of :func:`inpaint`: :class:`~layerdecomp.generate.ConstrainedOutput` at the input's
    size, whose ``images`` have the kept pixels pasted back (by default), plus ``raw``, the
    decodes without paste-back."""

    raw: list[Image.Image] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "size": list(self.size)}


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
    prompt: str = "",
    negative_prompt: str = "",
    guidance: float = 0.0,
    steps: int = 20,
    iterations: int = 5,
    direction: str = "newton",
    seed: int | None = None,
    restarts: int = 0,
    paste_back: bool = True,
    num_samples: int = 1,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    **sample_kwargs: Any,
) -> InpaintOutput:
    """Fill the white region of ``mask`` in ``image`` (inexact-Newton inpainting, §4.1).

    Args:
        backend: a loaded model (:func:`layerdecomp.models.load_model`).
        image: a PIL image or a path; any mode and size.
        mask: white (or 1) = region to fill, black (0) = keep; a PIL image, a path, or a tensor
            (H, W) / (1, 1, H, W). Same size as the image.
        prompt, negative_prompt, guidance: text conditioning; guidance w applies
            ``(1 + w)·ε_c − w·ε_u`` (0: no CFG, the paper's inpainting setting).
        steps: sampling steps; iterations: K Newton (or gradient) iterations per step.
        direction: ``"newton"`` or ``"gradient"``.
        seed: seeds the noise; ``None`` draws one (recorded in the output).
        restarts: warm restarts (§4.1).
        paste_back: copy the kept pixels of the input into the result exactly.
        num_samples: samples drawn in one batched run.
        callback, disable_progress: passed to :func:`solvers.sample` (``disable``).
        **sample_kwargs: further :func:`solvers.sample` options (``lam``, ``delta0``, ``eta``...).

    Raises:
        InputError: a mask that does not fit the image or leaves nothing to fill.
    """
    start = time.perf_counter()
    source = image if isinstance(image, Image.Image) else load_image(image)
    rgb = to_rgb(source)
    width, height = rgb.size
    fill = _fill_mask(mask, rgb.size)
    multiple = backend.size_multiple
    work = (round_up(width, multiple), round_up(height, multiple))
    pixels = image_to_tensor(rgb)
    work_fill = fill
    if work != (width, height):
        shape = (work[1], work[0])
        pixels = resize(pixels, shape, interpolation="bilinear", antialias=True)
        work_fill = (resize(fill, shape, interpolation="bilinear") > 0).float()
    device = backend.device
    constraint = Mask(pixels.to(device), (1.0 - work_fill).to(device), codec=backend)
    out = generate(
        backend,
        constraint,
        work,
        size=(width, height),
        prompt=prompt,
        negative_prompt=negative_prompt,
        guidance=guidance,
        steps=steps,
        iterations=iterations,
        direction=direction,
        seed=seed,
        restarts=restarts,
        num_samples=num_samples,
        callback=callback,
        disable_progress=disable_progress,
        parameters={"paste_back": paste_back},
        started=start,
        **sample_kwargs,
    )
    images = out.images
    if paste_back:
        keep = ~fill[0, 0].bool().numpy()[..., None]
        original = np.asarray(rgb)
        images = [Image.fromarray(np.where(keep, original, np.asarray(r))) for r in out.images]
    return InpaintOutput(**{**vars(out), "images": images}, raw=out.images)


__all__ = ["InpaintOutput", "inpaint"]
