"""The solver's options as frozen dataclasses, each field declared once with its bounds and help.

:class:`RefineOptions` holds what one noise level's inner loop needs (K, the direction, the λ
schedule, δ0, the step scale, the perturbation); :class:`SampleOptions` adds the sampling run
around it (steps, warm restarts, η) and contains a :class:`RefineOptions`. Task configurations
above contain these instead of declaring the ideas again, and the command line, the recipes and
the web form are generated from the same fields: :func:`option` puts a field's help and bounds in
its metadata, :func:`check_fields` enforces them (:mod:`layerdecomp.options` walks the tree).
"""

from __future__ import annotations

import math
import operator
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, Literal

from .schedules import Schedule

Number = int | float


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    ge: Number | None = None,
    gt: Number | None = None,
    le: Number | None = None,
    lt: Number | None = None,
    factory: Any = MISSING,
) -> Any:
    """A dataclass field whose metadata carries its help text and bounds.

    Args:
        default: the default value (or ``factory`` for a nested options dataclass).
        help: one line for ``--help``, the web form and the docs.
        ge, gt, le, lt: bounds (≥, >, ≤, <) checked by :func:`check_fields`.
    """
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def choices(cls: type, name: str) -> tuple[str, ...] | None:
    """The values a ``Literal[...]`` field of ``cls`` allows (``None``: not a literal)."""
    hint = typing.get_type_hints(cls)[name]
    return tuple(typing.get_args(hint)) if typing.get_origin(hint) is Literal else None


def bounds_text(meta: dict[str, Any]) -> str:
    """``"≥ 0"``, ``"in (0, 1]"``… for the bounds in a field's metadata (empty: none)."""
    low = ("(", meta["gt"]) if meta.get("gt") is not None else ("[", meta.get("ge"))
    high = (")", meta["lt"]) if meta.get("lt") is not None else ("]", meta.get("le"))
    if low[1] is not None and high[1] is not None:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low[1] is not None:
        return f"{'>' if low[0] == '(' else '≥'} {low[1]}"
    if high[1] is not None:
        return f"{'<' if high[0] == ')' else '≤'} {high[1]}"
    return ""


def _within(value: Any, meta: dict[str, Any]) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return True
    if isinstance(value, float) and not math.isfinite(value):
        return False
    tests = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}
    return all(meta.get(key) is None or test(value, meta[key]) for key, test in tests.items())


def check_fields(obj: Any) -> None:
    """Check every field of the dataclass ``obj`` against its type, choices and bounds.

    Raises:
        ValueError: ``"iters: expected an integer ≥ 0, got -1"``, naming the field.
    """
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, meta, hint = getattr(obj, f.name), f.metadata, hints[f.name]
        allowed = choices(type(obj), f.name)
        if allowed is not None:
            if value not in allowed:
                raise ValueError(f"{f.name}: {value!r} is not one of {', '.join(allowed)}")
            continue
        if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{f.name}: expected an integer, got {value!r}")
        if hint is float and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{f.name}: expected a number, got {value!r}")
        if hint is bool and not isinstance(value, bool):
            raise ValueError(f"{f.name}: expected true or false, got {value!r}")
        if isinstance(hint, type) and is_dataclass(hint) and not isinstance(value, hint):
            raise ValueError(f"{f.name}: expected a {hint.__name__}, got {value!r}")
        if not _within(value, meta):
            expected = bounds_text(meta) or "a finite value"
            raise ValueError(f"{f.name}: expected {expected}, got {value!r}")


@dataclass(frozen=True)
class RefineOptions:
    """K direction iterations at one noise level: the inner loop of Algorithm 1.

    The defaults are the authors' inpainting setting: K = 5, λ linear 0.5 → 0.1, δ0 = 0.005.
    """

    iters: int = option(5, "K: Newton (or gradient) iterations per noise level.", ge=0)
    direction: Literal["newton", "gradient"] = option(
        "newton", "J·e by a finite difference (newton) or Jᵀe by backprop (gradient)."
    )
    lam: Schedule = option(
        factory=Schedule,
        help="λ over the K iterations: linear:START:END, constant:VALUE, dynamic:SCALE "
        "(SCALE/max|h|), or a number (constant).",
    )
    delta0: float = option(0.005, "Finite-difference scale: δ = delta0 / max|e|.", gt=0)
    step_scale: Literal["max", "error"] = option(
        "max", "Move x_t by λ·h/max|h| (max, the paper) or λ·max|e|·h/max|h| (error)."
    )
    perturbation: float = option(
        0.0, "Std of the noise around x̂0 before the error (the paper's SR perturbation).", ge=0
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", Schedule.parse(self.lam))
        check_fields(self)

    def step_sizes(self) -> list[float] | None:
        """λ_k for each of the K iterations (``None``: the dynamic rule, per sample)."""
        return self.lam.sizes(self.iters)


@dataclass(frozen=True)
class SampleOptions:
    """A constrained sampling run: the scheduler's steps, warm restarts, η, and at every step the
    inner loop's :class:`RefineOptions`."""

    steps: int = option(20, "Sampling steps.", ge=1)
    refine: RefineOptions = option(factory=RefineOptions, help="The inner loop at each step.")
    restarts: int = option(0, "Warm restarts: re-noise the result and sample again (§4.1).", ge=0)
    restart_strength: float = option(
        0.5, "Fraction of the schedule each warm restart runs again.", gt=0, le=1
    )
    eta: float = option(0.0, "DDIM stochasticity η (schedulers whose step takes it).", ge=0)

    def __post_init__(self) -> None:
        check_fields(self)


__all__ = [
    "RefineOptions",
    "SampleOptions",
    "Schedule",
    "bounds_text",
    "check_fields",
    "choices",
    "option",
]
