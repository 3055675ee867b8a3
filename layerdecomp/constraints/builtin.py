"""Imports the built-in constraints so that they register themselves."""

from . import blend, mask  # noqa: F401
