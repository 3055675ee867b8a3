"""Layer decomposition of an image of any size (§4.2): the API behind ``layerdecomp decompose``.

:func:`decompose_image` resizes a PIL image to the model's working size, runs the layer engine
(:func:`layerdecomp.layers.decompose`, configured by :class:`~layerdecomp.layers.DecomposeConfig`)
and brings the mask and layers back to the input's size, re-fitted to recompose it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import kornia
import torch
from PIL import Image

from ..io import image_to_tensor
from ..layers import DecomposeConfig, Layers, decompose, exact_layers, matte
from ..models.base import native_size
from .generate import round_up


def decompose_image(
    backend,
    image: Image.Image,
    *prompts: str | Sequence[str],
    seed: int = 0,
    config: DecomposeConfig | None = None,
    disable: bool | None = None,
    work_side: int | None = None,
    matting: bool = True,
    **overrides,
) -> Layers:
    """:func:`decompose` for an RGB PIL image of any size; the layers come back at its size.

    ``prompts`` are the layers' prompts front to back, the background last: two or more strings
    (``decompose_image(b, im, "a cat", "a lawn")``) or one list.

    The model works on the image resized (antialiased) so that its longer side is ``work_side``
    (default: the model's native resolution where the backend tells it; 0 keeps the image's own
    size), each side rounded up to the model's size multiple. The masks and layers are resized
    back and re-fitted so that they recompose the original exactly. With ``matting`` (the
    default) the edges are then matted at the image's size (:func:`layerdecomp.layers.matte`:
    closed-form alpha in a band around each boundary, the layers' own colours there), still
    recomposing it exactly.
    """
    width, height = image.size
    multiple = getattr(backend, "size_multiple", backend.factor)
    if work_side is None:
        native = native_size(backend, default=None)
        work_side = max(native) if native else 0
    if work_side < 0:
        raise ValueError(f"work_side: expected ≥ 0, got {work_side}")
    scale = work_side / max(width, height) if work_side else 1.0
    work = (
        round_up(max(1, round(height * scale)), multiple),
        round_up(max(1, round(width * scale)), multiple),
    )
    original = image_to_tensor(image)
    pixels = original if work == (height, width) else _resize(original, work)
    generator = torch.Generator(device=getattr(backend, "device", "cpu")).manual_seed(seed)
    layers = decompose(
        backend,
        pixels,
        *prompts,
        config=config,
        generator=generator,
        disable=disable,
        **overrides,
    )
    if work != (height, width):
        masks = _resize(layers.masks, (height, width)).clamp(0, 1)
        masks = masks / masks.sum(0, keepdim=True).clamp_min(1e-12)
        masks[-1] = (1 - masks[:-1].sum(0)).clamp_min(0)
        estimates = _resize(layers.images, (height, width)).clamp(-1, 1)
        layers.masks, layers.images = masks, exact_layers(original, masks, estimates)
    else:  # decompose already fitted the layers to this very image
        layers.masks, layers.images = layers.masks.cpu(), layers.images.cpu()
    layers.config["seed"] = seed
    layers.config["work_size"] = [work[1], work[0]]
    if matting:
        layers = matte(original, layers)
    return layers


def run_record(
    layers: Layers, image: Image.Image, config: DecomposeConfig, work_side: int | None
) -> dict[str, Any]:
    """What ``run.json`` records of a decomposition, whoever ran it (the command line, the web
    page): the prompts, the parameters, the engine's trace; the caller adds where it ran."""
    prompts = list(layers.prompts)
    return {
        "size": list(image.size),
        "fg_prompt": prompts[0],
        "bg_prompt": prompts[-1],
        "prompts": prompts,
        "seed": layers.config.get("seed"),
        "parameters": {
            **asdict(config),
            "work_side": work_side,
            "matting": layers.config.get("matting") or False,
        },
        "timestep": layers.config.get("timestep"),
        "work_size": layers.config.get("work_size"),
        "nfe": layers.nfe,
        "mask_change": [round(c, 6) for c in layers.history],
        "iterations_run": len(layers.history),
        "swapped": layers.swapped,
        "restart": layers.restart,
    }


def _resize(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return kornia.geometry.transform.resize(
        tensor.float().cpu(), size, interpolation="bilinear", antialias=True
    )


__all__ = ["DecomposeConfig", "decompose_image", "run_record"]
