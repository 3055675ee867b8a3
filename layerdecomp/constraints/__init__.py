"""Constraints: the plugin registry, the base class, composition and the built-ins.

Importing the built-in modules here registers them (each is decorated with
:func:`~layerdecomp.constraints.registry.register`); the registry itself imports only
:mod:`.base`, so there is no import cycle.
"""

from .base import Composite, Constraint
from .blend import Blend
from .clip_style import ClipStyle, load_clip
from .downsample import Downsample, measure
from .mask import Mask, latent_mask
from .registry import (
    ENTRY_POINT_GROUP,
    UnknownConstraintError,
    available,
    build,
    failed,
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
    "failed",
    "get",
    "latent_mask",
    "load_clip",
    "load_entry_points",
    "measure",
    "register",
]
