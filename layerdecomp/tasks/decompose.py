"""Layer decomposition of an image of any size (§4.2): the API behind ``layerdecomp decompose``.

:func:`decompose_image` resizes a PIL image to the model's working size, runs the layer engine
(:func:`layerdecomp.layers.decompose`, configured by :class:`~layerdecomp.layers.DecomposeConfig`)
and brings the mask and layers back to the input's size, re-fitted to recompose it exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import kornia
import torch
from PIL import Image

from ..codecs import Backend
from ..io import check_image_size, image_to_tensor
from ..layers import DecomposeConfig, Layers, decompose, exact_layers, matte
from ..models import free_model_hooks
from ..models.base import native_size
from ..options import configure
from ..worksize import resolve_side
from .tiles import work_size


def decompose_image(
    backend: Backend,
    image: Image.Image,
    *prompts: str | Sequence[str],
    seed: int = 0,
    config: DecomposeConfig | None = None,
    disable: bool | None = None,
    callback: Callable[[dict], None] | None = None,
    **overrides: Any,
) -> Layers:
    """:func:`decompose` for an RGB PIL image of any size; the layers come back at its size.

    ``prompts`` are the layers' prompts front to back, the background last: two or more strings
    (``decompose_image(b, im, "a cat", "a lawn")``) or one list. ``config`` holds the options
    (:class:`DecomposeConfig`); keyword ``overrides`` name them (``updates=6``, ``iters=2``).

    The model works on the image resized (antialiased) so that its longer side is
    ``work_side`` (default: the model's native resolution where the backend tells it; 0 keeps
    the image's own size), each side rounded up to the model's size multiple. The masks and
    layers are resized back and re-fitted so that they recompose the original exactly. With
    ``matting`` (the default) the edges are then matted at the image's size
    (:func:`layerdecomp.layers.matte`: closed-form alpha in a band around each boundary, the
    layers' own colours there), still recomposing it exactly.

    When the layer engine is done, the pipeline's offloaded models go back to the CPU, as at the
    end of a diffusers pipeline call (:func:`~layerdecomp.models.free_model_hooks`).
    """
    config = configure(DecomposeConfig, config, overrides)
    width, height = image.size
    check_image_size(image.size, backend.factor, "decompose")
    multiple = backend.size_multiple
    work_side = resolve_side(config.work_side, native_size(backend, default=None))
    work = work_size((width, height), work_side, multiple)[::-1]  # (height, width)
    original = image_to_tensor(image)
    pixels = original if work == (height, width) else _resize(original, work)
    generator = torch.Generator(device=backend.device).manual_seed(seed)
    try:
        layers = decompose(
            backend,
            pixels,
            *prompts,
            config=config,
            generator=generator,
            disable=disable,
            callback=callback,
        )
    finally:  # the model's work is done: a user's offloaded models go back to the CPU
        free_model_hooks(backend)
    if work != (height, width):
        masks = _resize(layers.masks, (height, width)).clamp(0, 1)
        masks = masks / masks.sum(0, keepdim=True).clamp_min(1e-12)
        masks[-1] = (1 - masks[:-1].sum(0)).clamp_min(0)
        estimates = _resize(layers.images, (height, width)).clamp(-1, 1)
        layers.masks, layers.images = masks, exact_layers(original, masks, estimates)
    else:  # decompose already fitted the layers to this very image
        layers.masks, layers.images = layers.masks.cpu(), layers.images.cpu()
    layers.trace["seed"] = seed
    layers.trace["work_size"] = [work[1], work[0]]
    if config.matting:
        layers = matte(original, layers)
    return layers


def _resize(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return kornia.geometry.transform.resize(
        tensor.float().cpu(), size, interpolation="bilinear", antialias=True
    )


__all__ = ["DecomposeConfig", "decompose_image"]
