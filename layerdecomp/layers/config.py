"""The layer engine's options (§4.2): one frozen dataclass tree, each option declared once.

:class:`DecomposeConfig` contains the solver's :class:`solvers.RefineOptions` (``refine``: the
inexact-Newton inpainting of every sample, K = 3 here) and :class:`EMOptions` (``em``: the mask
updates), beside the sampling of the layers, the orientation check and the task's working size.
The command line, the recipes, the web form and ``run.json`` are generated from these fields
(:mod:`layerdecomp.options`), each under its own name (``--iters``, ``--updates``, ``--runs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from solvers import RefineOptions
from solvers.options import check_fields, option

from ..worksize import work_side_option


@dataclass(frozen=True)
class EMOptions:
    """The mask updates: EM for an L-component mixture, per-pixel Gaussian layers."""

    updates: int = option(12, "Mask updates at most.", ge=1)
    variance_floor: float = option(
        2e-3, "Added to each layer's per-pixel variance (pixel values in [−1, 1]).", gt=0
    )
    damping: float = option(
        0.7, "Step of the mask toward the responsibility (1 = jump).", gt=0, le=1
    )
    smoothing: float = option(
        1.0, "σ in pixels of the blur that pools neighbouring pixels' evidence (0 = none).", ge=0
    )
    prior: Literal["uniform", "mask", "mixture"] = option(
        "mixture",
        "Per-pixel prior: none (uniform), the current mask (mask), or each layer's share of the "
        "image (mixture, EM's update).",
    )
    min_share: float = option(
        0.35, "The mixture prior's shares are kept in [min_share, 1 − min_share].", gt=0, le=0.5
    )
    calibrate: bool = option(
        True, "Add each layer's mean squared prediction error over its pixels to its variance."
    )
    memory: float = option(
        0.0,
        "Weight of the previous update's held-out samples in each layer's per-pixel Gaussian, "
        "kept as a decaying sum (0: each update's own samples alone).",
        ge=0,
        lt=1,
    )
    tol: float = option(2e-3, "Stop once the mean absolute mask change falls below this.", ge=0)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class DecomposeConfig:
    """Parameters of :func:`~layerdecomp.layers.decompose` and
    :func:`~layerdecomp.tasks.decompose_image` (recorded with every run)."""

    REPLACED: ClassVar[dict[str, str]] = {
        "iterations": "updates",
        "newton_iters": "iters",
        "restarts": "runs",
    }
    """Earlier names of options: refused by every front end, naming what replaces them."""

    guidance: float = option(0.0, "CFG weight w of the layer prompts.", ge=0)
    negative_prompt: str = option("", "Unconditional prompt (with guidance > 0).")
    noise_level: float = option(
        0.35, "The single noise level, as a fraction of the schedule.", gt=0, lt=1
    )
    samples: int = option(5, "Samples per layer and mask update.", ge=1)
    anchor: bool = option(
        True,
        "Shift each decoded sample by its mean error, per channel, over its kept cells away from "
        "the holes: a VAE decoder's group norms and attention spread a hole's content over the "
        "whole image as a colour cast.",
    )
    refine: RefineOptions = option(
        factory=lambda: RefineOptions(iters=3), help="Inexact-Newton inpainting of each sample."
    )
    em: EMOptions = option(factory=EMOptions, help="The mask updates.")
    runs: int = option(
        3,
        "Runs from different random masks (batched); the one that fits the prompts best is kept.",
        ge=1,
    )
    select_after: int = option(
        0,
        "Mask updates after which only the run that fits the prompts best goes on (the check "
        "of orient_by; 0: every run to the end).",
        ge=0,
    )
    orient: bool = option(
        True, "Give each component the prompt that denoises it best (per-cell errors)."
    )
    orient_by: Literal["denoising", "inpainting"] = option(
        "denoising",
        "How that check scores a prompt on a component: by inpainting the component from the "
        "rest of the image under the prompt (inpainting: one batched call), or by denoising "
        "the whole image under it (denoising: one call per level).",
    )
    orient_levels: int = option(8, "Noise levels of that check (denoising).", ge=1)
    orient_border: float = option(
        0.5,
        "Weight of the background prior in that check: the prompts' fit is scaled to −1 per "
        "assignment and the component given to the last (background) prompt adds this times "
        "its share of the image's border (0: the prompts alone).",
        ge=0,
    )
    orient_draws: int = option(
        2, "Inpaintings per prompt and component of that check (inpainting), averaged.", ge=1
    )
    fill_holes: bool = option(
        True,
        "After the mask updates, give each front layer the background's regions that it "
        "encloses (the background can paint an object's inside from its neighbours, leaving the "
        "layer its outline); a layer holding half of the image's frame keeps its holes.",
    )
    recheck_pieces: bool = option(
        True,
        "After that, give every piece of a front layer but its largest to the layer whose "
        "prompt denoises it best (the orientation check per piece, on its per-pixel map: the "
        "specks of a pattern go back to the background).",
    )
    final_samples: int = option(4, "Samples averaged for the final layers.", ge=1)
    work_side: int | None = work_side_option()
    matting: bool = option(
        True,
        "Matte the layers' edges after the engine (closed-form alpha, the layers' own "
        "colours in soft edges).",
    )

    def __post_init__(self) -> None:
        check_fields(self)


__all__ = ["DecomposeConfig", "EMOptions"]
