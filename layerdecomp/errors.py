"""User-facing errors: one-line messages the CLI prints as ``error: <message>`` without a traceback.

Each class carries the exit code the CLI uses for it. They derive from :class:`ValueError`, so
Python callers that catch ``ValueError`` keep working.
"""

from __future__ import annotations


class LayerdecompError(ValueError):
    """Base class of the errors a user can fix; ``exit_code`` is the CLI's exit status."""

    exit_code = 1


class ModelSpecError(LayerdecompError):
    """A ``--model`` spec that cannot be resolved, is unsafe to load, or is not supported."""

    exit_code = 2


class InputError(LayerdecompError):
    """Bad input: a missing or unreadable image, a mask that does not fit, a bad output path."""

    exit_code = 1


__all__ = ["InputError", "LayerdecompError", "ModelSpecError"]
