"""Layers: the engine that splits an image into foreground, background and a soft mask (§4.2).

- :mod:`.engine`: :func:`decompose` and its :class:`DecomposeConfig` (the EM loop, batched).
- :mod:`.stats`: the per-pixel statistics and the mask update the engine uses.
- :mod:`.recompose`: exact recomposition, ``x = m·x¹ + (1−m)·x²``.
- :mod:`.writers`: the output formats (PNG, contact sheet, OpenRaster) behind one table, and
  :func:`save_decomposition`, which writes a run's folder atomically.

The task that runs on a PIL image of any size is :func:`layerdecomp.tasks.decompose_image`.
"""

from .engine import DecomposeConfig, Layers, decompose
from .recompose import exact_layers, recompose
from .writers import OUTPUTS, WRITERS, Writer, is_complete, layer_images, save_decomposition

__all__ = [
    "OUTPUTS",
    "WRITERS",
    "DecomposeConfig",
    "Layers",
    "Writer",
    "decompose",
    "exact_layers",
    "is_complete",
    "layer_images",
    "recompose",
    "save_decomposition",
]
