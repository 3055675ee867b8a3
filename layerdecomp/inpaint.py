"""Inpainting with inexact-Newton steps (§4.1): the Python API behind ``layerdecomp inpaint``.

The image is resized up to the next multiple of the model's size multiple, the mask likewise (any
pixel touched by the fill region counts as fill), the ``mask`` constraint keeps the known latent
cells while :func:`solvers.sample` runs, and the decode is resized back to the original size. By
default the kept pixels are pasted back exactly, so they equal the input bit for bit.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from kornia.geometry.transform import resize
from PIL import Image

import solvers

from .constraints import Mask
from .errors import InputError
from .io import image_to_tensor, load_image, load_mask, mask_to_tensor, tensor_to_image, to_rgb
from .models.base import Backend

ImageLike = Image.Image | str | os.PathLike
MaskLike = Image.Image | str | os.PathLike | torch.Tensor


@dataclass
class InpaintOutput:
    """Result of :func:`inpaint`.

    Attributes:
        images: the inpainted images at the original size (kept pixels pasted back by default).
        raw: the raw decodes at the original size, without paste-back.
        nfe: denoiser evaluations; ``backward``: backward passes (gradient direction only).
        residuals: constraint residual per step and iteration, (steps, K+1, num_samples).
        timesteps: the timestep of every row of ``residuals``.
        seed: the seed that reproduces the run.
        size: (width, height) of the input; ``work_size`` the size the model ran at.
        timings: seconds spent in ``prepare`` (prompt and measurement encoding), ``sample``,
            ``decode`` and ``total``.
        parameters: every argument of the call, JSON-ready.
    """

    images: list[Image.Image]
    raw: list[Image.Image]
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
        first = self.residuals[:, 0, :].tolist()
        last = self.residuals[:, -1, :].tolist()
        return {
            "parameters": self.parameters,
            "seed": self.seed,
            "size": list(self.size),
            "work_size": list(self.work_size),
            "nfe": self.nfe,
            "backward": self.backward,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "residuals": {
                "timesteps": self.timesteps,
                "first": [row[0] for row in first],
                "last": [row[0] for row in last],
                "per_iteration": self.residuals[:, :, 0].tolist(),
            },
        }


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


def _round_up(value: int, multiple: int) -> int:
    return max(multiple, math.ceil(value / multiple) * multiple)


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
    if num_samples < 1:
        raise ValueError(f"num_samples: expected ≥ 1, got {num_samples}")
    seed = secrets.randbits(32) if seed is None else int(seed)

    multiple = backend.size_multiple
    work = (_round_up(width, multiple), _round_up(height, multiple))
    pixels = image_to_tensor(rgb)
    work_fill = fill
    if work != (width, height):
        shape = (work[1], work[0])
        pixels = resize(pixels, shape, interpolation="bilinear", antialias=True)
        work_fill = (resize(fill, shape, interpolation="bilinear") > 0).float()
    device = backend.device
    constraint = Mask(pixels.to(device), (1.0 - work_fill).to(device), codec=backend)
    denoiser = backend.denoiser(prompt, negative_prompt, guidance)
    prepared = time.perf_counter()

    generator = torch.Generator(device=device).manual_seed(seed)
    result = solvers.sample(
        denoiser,
        constraint,
        shape=backend.latent_shape(num_samples, work[1], work[0]),
        num_inference_steps=steps,
        iterations=iterations,
        direction=direction,
        restarts=restarts,
        generator=generator,
        callback=callback,
        disable=disable_progress,
        device=device,
        dtype=torch.float32,
        **sample_kwargs,
    )
    sampled = time.perf_counter()
    with torch.no_grad():
        decoded = backend.decode(result.sample).float().clamp(-1, 1).cpu()
    if work != (width, height):
        decoded = resize(decoded, (height, width), interpolation="bilinear", antialias=True)
    raw = [tensor_to_image(decoded[i]) for i in range(num_samples)]
    images = raw
    if paste_back:
        keep = ~fill[0, 0].bool().numpy()[..., None]
        original = np.asarray(rgb)
        images = [Image.fromarray(np.where(keep, original, np.asarray(r))) for r in raw]
    done = time.perf_counter()

    parameters = {
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "guidance": guidance,
        "steps": steps,
        "iterations": iterations,
        "direction": direction,
        "seed": seed,
        "restarts": restarts,
        "paste_back": paste_back,
        "num_samples": num_samples,
        **{k: v for k, v in sample_kwargs.items() if isinstance(v, int | float | str | bool)},
    }
    return InpaintOutput(
        images=images,
        raw=raw,
        nfe=result.nfe,
        backward=result.backward,
        residuals=result.residuals,
        timesteps=result.timesteps,
        seed=seed,
        size=(width, height),
        work_size=work,
        parameters=parameters,
        timings={
            "prepare": prepared - start,
            "sample": sampled - prepared,
            "decode": done - sampled,
            "total": done - start,
        },
    )


__all__ = ["InpaintOutput", "inpaint"]
