"""Step sizes λ_k for the K direction iterations of one noise level (Algorithm 1).

:class:`Schedule` is the one shape of λ everywhere (the solver, the task configs, the command
line's ``--lam``, recipes, ``run.json``): a rule and its end points, written as text
``linear:0.5:0.1``, ``constant:0.1`` (or just ``0.1``) or ``dynamic:0.5``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import torch

from ._checks import batch_amax

RULES = ("linear", "constant", "dynamic")


@dataclass(frozen=True)
class Schedule:
    """λ over the K iterations of one noise level.

    Attributes:
        rule: ``"linear"``: ``linspace(start, end, K)`` (the authors' 0.5 → 0.1);
            ``"constant"``: ``start`` every iteration; ``"dynamic"``: ``start / max|h|`` per
            iteration and sample (:func:`dynamic_step`).
        start, end: the end points (``end`` is used by ``linear`` only).
    """

    rule: Literal["linear", "constant", "dynamic"] = "linear"
    start: float = 0.5
    end: float = 0.1

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"lam: {self.rule!r} is not one of {', '.join(RULES)}")
        for value in (self.start, self.end):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"lam: step sizes must be numbers, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"lam: step sizes must be finite and ≥ 0, got {value!r}")
        object.__setattr__(self, "start", float(self.start))
        # only the linear rule has an end: the others keep end = start, so equal rules compare equal
        object.__setattr__(self, "end", float(self.end if self.rule == "linear" else self.start))

    @classmethod
    def parse(cls, value: Schedule | str | float | int) -> Schedule:
        """A schedule from its text (``linear:0.5:0.1``, ``constant:0.1``, ``dynamic:0.5``,
        ``linear`` with the default end points) or a number (a constant λ).

        Raises:
            ValueError: anything else, with the accepted forms.
        """
        if isinstance(value, Schedule):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return cls("constant", value, value)
        text = str(value).strip()
        rule, _, rest = text.partition(":")
        try:
            if rule not in RULES:
                number = float(text)
                return cls("constant", number, number)
            points = [float(p) for p in rest.split(":")] if rest else []
            if len(points) > (2 if rule == "linear" else 1):
                raise ValueError
            default = cls(rule)
            start = points[0] if points else default.start
            end = points[1] if len(points) > 1 else (start if rule != "linear" else default.end)
            return cls(rule, start, end)
        except ValueError as exc:
            detail = str(exc) if str(exc).startswith("lam:") else ""
            raise ValueError(
                detail
                or f"lam: {text!r} is not a schedule (linear:START:END, constant:VALUE, "
                "dynamic:SCALE, or a number)"
            ) from None

    def __str__(self) -> str:
        if self.rule == "linear":
            return f"linear:{self.start!r}:{self.end!r}"
        return f"{self.rule}:{self.start!r}"

    def sizes(self, iterations: int) -> list[float] | None:
        """λ for each of ``iterations`` iterations; ``None`` for the ``dynamic`` rule."""
        if self.rule == "dynamic":
            return None
        if self.rule == "constant" or iterations == 1:
            return [self.start] * iterations
        return list(_linear(self.start, self.end, iterations))


@functools.lru_cache(maxsize=256)
def _linear(start: float, end: float, iterations: int) -> tuple[float, ...]:
    """``linspace(start, end, K)`` in float64, computed once per (start, end, K)."""
    return tuple(torch.linspace(start, end, iterations, dtype=torch.float64).tolist())


def dynamic_step(h: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """The paper's "dynamic" rule ``λ = scale / max|h|`` per sample (h un-normalised).

    Applied to a raw ``h`` this moves x_t by ``scale`` in max-norm, like ``scale·h/max|h|``.
    """
    amax = batch_amax(h)
    return torch.where(amax > 0, scale / amax.clamp_min(torch.finfo(h.dtype).tiny), 0.0)


__all__ = ["RULES", "Schedule", "dynamic_step"]
