"""Style-guided generation (§4.1): the Python API behind ``layerdecomp style``.

A prompt, with classifier-free guidance (w = 2), generates the content; the ``clip_style``
constraint pulls the Gram matrix of CLIP ViT-B/16 block-2 tokens of the decoded x̂0 toward the
reference image's, with K = 5 inexact-Newton iterations per step and λ linear 0.5 → 0.1.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from .constraints.clip_style import DEFAULT_CLIP_MODEL, ClipStyle, load_clip
from .errors import InputError
from .generate import ConstrainedOutput, generate
from .io import image_to_tensor, load_image, to_rgb
from .models.base import Backend, native_size

ImageLike = Image.Image | str | os.PathLike


def stylize(
    backend: Backend,
    reference: ImageLike,
    *,
    prompt: str,
    clip: torch.nn.Module | str | os.PathLike = "openai",
    clip_model: str = DEFAULT_CLIP_MODEL,
    block: int = 2,
    size: tuple[int, int] | None = None,
    negative_prompt: str = "",
    guidance: float = 2.0,
    steps: int = 20,
    iterations: int = 5,
    lam_start: float = 0.5,
    lam_end: float = 0.1,
    direction: str = "newton",
    seed: int | None = None,
    restarts: int = 0,
    num_samples: int = 1,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    **sample_kwargs: Any,
) -> ConstrainedOutput:
    """Generate ``prompt`` in the style of ``reference`` (CLIP Gram matching, §4.1).

    Args:
        backend: a loaded model (:func:`layerdecomp.models.load_model`).
        reference: the style image (PIL or path; any mode and size).
        prompt: the content prompt.
        clip: a loaded open_clip model (or its vision tower), or a spec for
            :func:`~layerdecomp.constraints.clip_style.load_clip` (tag, checkpoint, folder).
        clip_model: the architecture for a spec (ViT-B-16).
        block: CLIP residual block whose tokens give the Gram matrix (0-based; 2).
        size: output (width, height); default the model's native size. Must be a multiple of
            the model's size multiple.
        negative_prompt, guidance: CFG, ``(1 + w)·ε_c − w·ε_u`` with w = 2.
        steps, iterations: 20 and K = 5.
        lam_start, lam_end: λ linear from 0.5 to 0.1.
        direction, seed, restarts, num_samples, callback, disable_progress: see
            :func:`layerdecomp.generate.generate`.
        **sample_kwargs: further :func:`solvers.sample` options.

    Raises:
        InputError: a size that is not a multiple of the model's size multiple.
    """
    start = time.perf_counter()
    rgb = to_rgb(reference if isinstance(reference, Image.Image) else load_image(reference))
    width, height = size or native_size(backend)
    multiple = backend.size_multiple
    if width < 1 or height < 1 or width % multiple or height % multiple:
        raise InputError(
            f"size: {width}x{height} is not a positive multiple of the model's {multiple}"
        )
    clip_spec = type(clip).__name__ if isinstance(clip, torch.nn.Module) else str(clip)
    if not isinstance(clip, torch.nn.Module):
        clip = load_clip(clip, clip_model, device=backend.device)
    constraint = ClipStyle(
        image_to_tensor(rgb).to(backend.device), clip=clip, block=block, codec=backend
    )
    return generate(
        backend,
        constraint,
        (width, height),
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
        parameters={
            "block": block,
            "clip_model": clip_model,
            "clip": clip_spec,
            "style_size": list(rgb.size),
        },
        started=start,
        lam="linear",
        lam_start=lam_start,
        lam_end=lam_end,
        **sample_kwargs,
    )


__all__ = ["native_size", "stylize"]
