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

from .config import SamplingConfig
from .constraint import ConstraintConfig, run_constraint
from .decompose import DecomposeConfig, decompose_image
from .generate import ConstrainedOutput, generate
from .inpaint import InpaintConfig, InpaintOutput, inpaint
from .style import StyleConfig, stylize
from .superres import SuperresConfig, superres

# ``inpaint`` and ``superres`` name both a module and its function: the imports above bind the
# package attributes to the functions (tests/layerdecomp/tasks/test_exports.py checks it).
__all__ = [
    "ConstrainedOutput",
    "ConstraintConfig",
    "DecomposeConfig",
    "InpaintConfig",
    "InpaintOutput",
    "SamplingConfig",
    "StyleConfig",
    "SuperresConfig",
    "decompose_image",
    "generate",
    "inpaint",
    "run_constraint",
    "stylize",
    "superres",
]
