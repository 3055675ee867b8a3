"""Helpers shared by the benchmark scripts (imported like ``_memory``: the scripts' folder is on
``sys.path`` when they run)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from layerdecomp.io import image_to_tensor


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """A composite's uint8 (H, W, 3) array as a (1, 3, H, W) float tensor in [−1, 1]."""
    return image_to_tensor(Image.fromarray(array))


def quiet_libraries() -> None:
    """Keep diffusers and transformers to errors (no loading bars): the table stays readable."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for module in (diffusers_logging, transformers_logging):
        module.set_verbosity_error()
        module.disable_progress_bar()


def add_model_option(parser, what: str) -> None:
    """``--model`` of the quality benchmarks: repeatable, each a name or a comma list."""
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help=f"a model (repeat it, or a comma list: {what}; default mini)",
    )


def model_list(values: list[str] | None, default: str = "mini") -> list[str]:
    """The models of repeated ``--model`` flags, each possibly a comma list (default: mini)."""
    models = [m.strip() for value in values or [default] for m in value.split(",") if m.strip()]
    return list(dict.fromkeys(models))
