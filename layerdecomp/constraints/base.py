"""The constraint base class and weighted composition (``docs/algorithm.md``, "Constraints").

A constraint is called on x̂0 (model space) and returns ``(e, residual)``: the error direction
``e`` that points from x̂0 toward satisfying it (for a linear operator ``Aᵀ(y − A·x̂0)``), and a
per-sample scalar residual (B,). This is the ``constraint`` argument of :func:`solvers.sample`.
"""

from __future__ import annotations

import torch


class Constraint:
    """Base class. Subclasses implement :meth:`error`; the first docstring line describes them."""

    name: str = ""
    not_from_one_image: str | None = None
    """Why :meth:`from_image` refuses to build it (``None``: it can), known before any work:
    the command line refuses such a constraint before the model loads, ``--dry-run`` too."""

    def error(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(e, residual)`` for the current x̂0."""
        raise NotImplementedError

    def __call__(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.error(x0)

    @classmethod
    def from_image(cls, image: torch.Tensor, *, codec=None, **arguments) -> Constraint:
        """Build the constraint from one input image (what ``layerdecomp run NAME`` calls).

        ``image`` is (1, 3, H, W) in [−1, 1], already at the model's working size; ``arguments``
        come from the command line or a recipe. The default calls ``cls(image=…, codec=…)``; a
        constraint that needs other inputs overrides it, and one that cannot be built from one
        image raises :class:`NotImplementedError` with the reason.
        """
        return cls(image=image, codec=codec, **arguments)

    @classmethod
    def description(cls) -> str:
        """The one-line description: the first line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def __mul__(self, weight: float) -> Composite:
        return Composite([(float(weight), self)])

    __rmul__ = __mul__

    def __add__(self, other: Constraint) -> Composite:
        return Composite(_terms(self) + _terms(other))


def _terms(constraint: Constraint) -> list[tuple[float, Constraint]]:
    if isinstance(constraint, Composite):
        return list(constraint.terms)
    if isinstance(constraint, Constraint):
        return [(1.0, constraint)]
    raise TypeError(f"cannot compose a constraint with {type(constraint).__name__}")


class Composite(Constraint):
    """Weighted sum of constraints: ``e = Σ wᵢ·eᵢ``, ``residual = Σ wᵢ·rᵢ``."""

    name = "composite"

    def __init__(self, terms: list[tuple[float, Constraint]]) -> None:
        if not terms:
            raise ValueError("terms: a composite needs at least one constraint")
        self.terms = terms

    def error(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total_e, total_r = None, None
        for weight, constraint in self.terms:
            e, r = constraint.error(x0)
            total_e = weight * e if total_e is None else total_e + weight * e
            total_r = weight * r if total_r is None else total_r + weight * r
        return total_e, total_r

    def __mul__(self, weight: float) -> Composite:
        return Composite([(float(weight) * w, c) for w, c in self.terms])

    __rmul__ = __mul__
