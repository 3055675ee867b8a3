"""Imports the built-in constraints so that they register themselves."""

from . import mask  # noqa: F401
