"""Task configurations: frozen dataclasses, the one declaration of every task option.

Each sampling task (inpaint, superres, style, a constraint run by name) has a config dataclass
derived from :class:`SamplingConfig`: the prompt, its guidance, and the solver's own
:class:`solvers.SampleOptions` (steps, restarts, η, and the inner loop's
:class:`solvers.RefineOptions`: K, direction, λ, δ0…) contained, not declared again. Every field
carries its help and bounds (:func:`solvers.options.option`); the command line, the recipes, the
web form and ``run.json`` are generated from these fields (:mod:`layerdecomp.options`), under the
same names: a nested field is known by its own name (``iters``, ``steps``, ``lam``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from solvers import RefineOptions, SampleOptions, Schedule
from solvers.options import check_fields, option

from ..options import as_dict, configure, replace_leaves


@dataclass(frozen=True)
class SamplingConfig:
    """The options every constrained-sampling task shares: the conditioning, and the solver's
    :class:`~solvers.SampleOptions` (``sampling``)."""

    REPLACED: ClassVar[dict[str, str]] = {
        "iterations": "iters",
        "lam_start": "lam linear:START:END",
        "lam_end": "lam linear:START:END",
    }
    """Earlier names of options: refused by every front end, naming what replaces them."""

    prompt: str = option("", "Text prompt.")
    negative_prompt: str = option("", "Unconditional prompt (with guidance > 0).")
    guidance: float = option(0.0, "CFG weight w: (1+w)·ε_c − w·ε_u; 0 = no guidance.", ge=0)
    sampling: SampleOptions = option(factory=SampleOptions, help="The constrained sampler.")

    def __post_init__(self) -> None:
        check_fields(self)


def sampling(steps: int = 20, **refine) -> SampleOptions:
    """A :class:`~solvers.SampleOptions` whose inner loop has the given ``refine`` fields (for
    task configs with other defaults than the solver's)."""
    return SampleOptions(steps=steps, refine=RefineOptions(**refine))


__all__ = [
    "SamplingConfig",
    "Schedule",
    "as_dict",
    "configure",
    "replace_leaves",
    "sampling",
]
