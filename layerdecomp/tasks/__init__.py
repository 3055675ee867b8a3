"""Tasks: what a user asks of a model, each a frozen config dataclass plus one function.

=============  =======================  ========================================================
task           config                   function
=============  =======================  ========================================================
inpaint        :class:`InpaintConfig`   :func:`inpaint` (fill a masked region, §4.1)
superres       :class:`SuperresConfig`  :func:`superres` (×s super-resolution, §4.1)
style          :class:`StyleConfig`     :func:`stylize` (CLIP Gram style, §4.1)
decompose      :class:`DecomposeConfig` :func:`decompose_image` (layers, §4.2)
a constraint   :class:`ConstraintConfig` :func:`run_constraint` (any registered constraint)
=============  =======================  ========================================================

The config classes hold every default (the CLI and the recipes read them there);
:func:`~.generate.generate` is the constrained-generation driver the sampling tasks share, and
:mod:`.tiles` cuts images far above the model's native size into overlapping tiles. A new task
(deblurring, colourisation) is a constraint plus, if it needs its own inputs, a module here.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConstrainedOutput": "generate",
    "generate": "generate",
    "SamplingConfig": "config",
    "InpaintConfig": "inpaint",
    "InpaintOutput": "inpaint",
    "inpaint": "inpaint",
    "SuperresConfig": "superres",
    "superres": "superres",
    "StyleConfig": "style",
    "stylize": "style",
    "DecomposeConfig": "decompose",
    "decompose_image": "decompose",
    "ConstraintConfig": "constraint",
    "run_constraint": "constraint",
}


def __getattr__(name: str) -> Any:
    """Import the task modules lazily: ``import layerdecomp.tasks`` stays cheap for the CLI."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
