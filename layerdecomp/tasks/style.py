"""Style-guided generation: the Python API behind ``layerdecomp style``.

From the authors' code page; the paper has no style experiment.

A prompt, with classifier-free guidance (w = 2), generates the content; the ``clip_style``
constraint pulls the Gram matrix of CLIP ViT-B/16 block-2 tokens of the decoded x̂0 toward the
reference image's, with K = 5 inexact-Newton iterations per step and λ linear 0.5 → 0.1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from solvers.options import option

from ..codecs import Backend
from ..constraints.clip_style import DEFAULT_CLIP_MODEL, ClipStyle, load_clip
from ..errors import InputError
from ..io import image_to_tensor, load_image, to_rgb
from ..models.base import native_size
from ..options import configure
from .config import SamplingConfig
from .generate import ConstrainedOutput, ImageLike, generate


@dataclass(frozen=True)
class StyleConfig(SamplingConfig):
    """Parameters of :func:`stylize` (the authors' setting: CFG w = 2, K = 5, λ 0.5 → 0.1):
    :class:`SamplingConfig`, then the CLIP model and the output size."""

    guidance: float = option(2.0, "CFG weight w: (1+w)·ε_c − w·ε_u; 0 = no guidance.", ge=0)
    clip: str = option(
        "openai", "CLIP weights: an open_clip pretrained tag, a checkpoint file, or a folder."
    )
    clip_model: str = option(
        DEFAULT_CLIP_MODEL, "open_clip architecture (or a model-config JSON file)."
    )
    block: int = option(2, "CLIP residual block whose tokens give the Gram matrix (0-based).", ge=0)
    width: int = option(0, "Output width in pixels; 0 = the model's native size.", ge=0)
    height: int = option(0, "Output height in pixels; 0 = the model's native size.", ge=0)


def stylize(
    backend: Backend,
    reference: ImageLike,
    *,
    config: StyleConfig | None = None,
    clip: torch.nn.Module | None = None,
    seed: int | None = None,
    num_samples: int = 1,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    **overrides: Any,
) -> ConstrainedOutput:
    """Generate ``config.prompt`` in the style of ``reference`` (CLIP Gram matching).

    Args:
        backend: a loaded model (:func:`layerdecomp.models.load_model`).
        reference: the style image (PIL or path; any mode and size).
        config: the parameters (:class:`StyleConfig`); keyword ``overrides`` name its options
            (``prompt="a fox face"``, ``steps=10``).
        clip: an already loaded open_clip model (or its vision tower); default: loaded from
            ``config.clip`` / ``config.clip_model`` with
            :func:`~layerdecomp.constraints.clip_style.load_clip`.
        seed, num_samples, callback, disable_progress: see :func:`~.generate.generate`.

    Raises:
        InputError: a size that is not a multiple of the model's size multiple, a bad parameter.
    """
    start = time.perf_counter()
    config = configure(StyleConfig, config, overrides)
    rgb = to_rgb(reference if isinstance(reference, Image.Image) else load_image(reference))
    native = native_size(backend)
    width, height = config.width or native[0], config.height or native[1]
    multiple = backend.size_multiple
    if width % multiple or height % multiple:
        raise InputError(
            f"size: {width}x{height} is not a positive multiple of the model's {multiple}"
        )
    if clip is None:
        clip = load_clip(config.clip, config.clip_model, device=backend.device)
    constraint = ClipStyle(
        image_to_tensor(rgb).to(backend.device), clip=clip, block=config.block, codec=backend
    )
    return generate(
        backend,
        constraint,
        (width, height),
        config,
        seed=seed,
        num_samples=num_samples,
        callback=callback,
        disable_progress=disable_progress,
        parameters={"style_size": list(rgb.size), "size": [width, height]},
        started=start,
    )


__all__ = ["StyleConfig", "stylize"]
