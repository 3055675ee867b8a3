"""layerdecomp: constrained sampling in pre-trained diffusion models, and layer decomposition.

Built on :mod:`solvers` (the inexact-Newton core). The main entry points are imported lazily so
that ``import layerdecomp`` stays cheap::

    from layerdecomp import load_model, decompose_image, inpaint

Layout: :mod:`layerdecomp.tasks` (inpaint, superres, style, decompose, any constraint by name),
:mod:`layerdecomp.layers` (the layer engine and its writers), :mod:`layerdecomp.models` (one
backend per model family), :mod:`layerdecomp.constraints` (the plugin registry and built-ins),
:mod:`layerdecomp.io` (images in and out), :mod:`layerdecomp.cli` (the ``layerdecomp`` command).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "layerdecomp.models",
    "decompose": "layerdecomp.layers",
    "Layers": "layerdecomp.layers",
    "DecomposeConfig": "layerdecomp.layers",
    "decompose_image": "layerdecomp.tasks",
    "inpaint": "layerdecomp.tasks",
    "superres": "layerdecomp.tasks",
    "stylize": "layerdecomp.tasks",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'layerdecomp' has no attribute {name!r}")


__all__ = [*_EXPORTS, "__version__"]
