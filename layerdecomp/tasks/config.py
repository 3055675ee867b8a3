"""Task configurations: frozen dataclasses, the one source of every task's defaults.

Each task (inpaint, superres, style, a constraint run by name) has a config dataclass derived from
:class:`SamplingConfig`, the options every constrained-sampling run shares (Algorithm 1 of the
paper, §3–4.1). The CLI's options take their defaults from these classes, and recipes
(:mod:`layerdecomp.recipes`) are checked against the same fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, TypeVar

Direction = Literal["newton", "gradient"]
DIRECTIONS = ("newton", "gradient")


def _check(condition: bool, name: str, expected: str, value: Any) -> None:
    if not condition:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


@dataclass(frozen=True)
class SamplingConfig:
    """The options every constrained-sampling task shares.

    Attributes:
        prompt: the text prompt.
        negative_prompt: the unconditional prompt (used with guidance).
        guidance: CFG weight w in ``(1 + w)·ε_c − w·ε_u``; 0 = no guidance.
        steps: sampling steps.
        iterations: K Newton (or gradient) iterations per step.
        direction: ``"newton"`` (J·e by finite differences) or ``"gradient"`` (Jᵀe, backprop).
        restarts: warm restarts (§4.1).
    """

    prompt: str = ""
    negative_prompt: str = ""
    guidance: float = 0.0
    steps: int = 20
    iterations: int = 5
    direction: Direction = "newton"
    restarts: int = 0

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.guidance) and self.guidance >= 0, "guidance", "≥ 0", self.guidance
        )
        _check(self.steps >= 1, "steps", "≥ 1", self.steps)
        _check(self.iterations >= 0, "iterations", "≥ 0", self.iterations)
        _check(self.restarts >= 0, "restarts", "≥ 0", self.restarts)
        _check(self.direction in DIRECTIONS, "direction", "'newton' or 'gradient'", self.direction)


C = TypeVar("C")


def configure(
    cls: type[C], config: C | None, overrides: dict[str, Any]
) -> tuple[C, dict[str, Any]]:
    """``config`` (default ``cls()``) with the ``overrides`` that name its fields applied.

    Returns the config and the remaining keyword arguments (for :func:`solvers.sample`).

    Raises:
        InputError: a value the config refuses (an ``InputError`` is a ``ValueError``).
    """
    from ..errors import InputError

    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    mine = {k: v for k, v in overrides.items() if k in names}
    rest = {k: v for k, v in overrides.items() if k not in names}
    try:
        base = config if config is not None else cls()
        return (replace(base, **mine) if mine else base), rest  # type: ignore[type-var]
    except ValueError as exc:
        raise InputError(str(exc)) from None


def as_dict(config: Any) -> dict[str, Any]:
    """The config's fields as a JSON-ready dict (for run metadata)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


__all__ = ["DIRECTIONS", "Direction", "SamplingConfig", "as_dict", "configure"]
