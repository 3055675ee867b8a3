"""layerdecomp: constrained sampling in pre-trained diffusion models, and layer decomposition.

Built on :mod:`solvers` (the inexact-Newton core). Constraints live in
:mod:`layerdecomp.constraints`.
"""

__version__ = "0.1.0"
