"""Layers: the engine that splits an image into foreground, background and a soft mask (§4.2).

- :mod:`.engine`: :func:`decompose` (the EM loop, batched); :mod:`.config` its options,
  :class:`DecomposeConfig` with :class:`EMOptions` and the solver's ``RefineOptions``.
- :mod:`.result`: :class:`Layers`, L layers front to back with their shares (and alphas).
- :mod:`.stats`: the per-pixel statistics and the mask update the engine uses.
- :mod:`.recompose`: exact recomposition, ``x = Σ_l m_l·x_l`` (:attr:`Layers.recomposition`).
- :mod:`.matting`: :func:`matte`, matting of the layers' edges after the engine (pymatting).
- :mod:`.writers`: the output formats (PNG, contact sheet, OpenRaster, Photoshop) behind one
  table, and :func:`save_decomposition`, which writes a run's folder atomically;
  :mod:`.layerfiles` writes the sheet, ``layers.ora`` and ``layers.psd``.

The task that runs on a PIL image of any size is :func:`layerdecomp.tasks.decompose_image`.
"""

from .config import DecomposeConfig, EMOptions
from .engine import MAX_LAYERS, check_prompts, decompose, layer_prompts
from .matting import matte
from .recompose import exact_layers
from .result import Layers, alphas_from_shares, composite_over, shares_from_alphas
from .writers import OUTPUTS, WRITERS, Writer, is_complete, layer_images, save_decomposition

__all__ = [
    "MAX_LAYERS",
    "OUTPUTS",
    "WRITERS",
    "DecomposeConfig",
    "EMOptions",
    "Layers",
    "Writer",
    "alphas_from_shares",
    "check_prompts",
    "composite_over",
    "decompose",
    "exact_layers",
    "is_complete",
    "layer_images",
    "layer_prompts",
    "matte",
    "save_decomposition",
    "shares_from_alphas",
]
