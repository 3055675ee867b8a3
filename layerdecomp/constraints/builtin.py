"""Imports the built-in constraints so that they register themselves."""

from . import blend, clip_style, downsample, mask  # noqa: F401
