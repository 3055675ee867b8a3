"""The working size of a task: ``work_side``, declared once for every task that resizes.

A model works best at its native size (64 px for ``mini``, 512 for SD 1.5, 1024 for SDXL):
``work_side`` is the longer side, in pixels, an image is resized to before the model sees it,
and by default it is the model's native side, as diffusers' pipelines default their height and
width, larger and smaller images alike. ``0`` keeps the image's own size (and so does a tiled
run, whose tiles are native-size). The outputs always come back at the input's size.
"""

from __future__ import annotations

from typing import Any

from solvers.options import option

WORK_SIDE_HELP = (
    "Longer side, in pixels, the model works at (default: the model's native size, for smaller "
    "and larger images alike; 0: the image's own, as in tiles). The outputs always have the "
    "input's size."
)


def work_side_option() -> Any:
    """The ``work_side`` field of a task config (its one declaration)."""
    return option(None, WORK_SIDE_HELP, ge=0)


def resolve_side(side: int | None, native: tuple[int, int] | None, *, tiled: bool = False) -> int:
    """The longer side to work at (0: the image's own): ``side`` when given, else the model's
    native side (the image's own when the native size is unknown or the run is tiled)."""
    if side is not None:
        return side
    return 0 if tiled or native is None else max(native)


__all__ = ["WORK_SIDE_HELP", "resolve_side", "work_side_option"]
