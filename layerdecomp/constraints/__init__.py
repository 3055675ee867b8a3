"""Constraints: the plugin registry, the base class, composition and the built-ins."""

from . import builtin  # noqa: F401  (registers the built-ins)
from .base import Composite, Constraint
from .blend import Blend, recompose
from .clip_style import ClipStyle, load_clip
from .downsample import Downsample, measure
from .mask import Mask, latent_mask
from .registry import (
    ENTRY_POINT_GROUP,
    UnknownConstraintError,
    available,
    build,
    get,
    load_entry_points,
    register,
)

__all__ = [
    "Blend",
    "ClipStyle",
    "Downsample",
    "ENTRY_POINT_GROUP",
    "Composite",
    "Constraint",
    "Mask",
    "UnknownConstraintError",
    "available",
    "build",
    "get",
    "latent_mask",
    "load_clip",
    "load_entry_points",
    "measure",
    "recompose",
    "register",
]
