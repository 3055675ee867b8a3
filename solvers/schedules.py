"""Step sizes λ_k for the K direction iterations of one sampling step (Algorithm 1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from ._checks import batch_amax

LambdaSchedule = Literal["linear", "constant", "dynamic"] | float | Sequence[float]


def step_sizes(
    lam: LambdaSchedule, iterations: int, *, lam_start: float = 0.5, lam_end: float = 0.1
) -> list[float] | None:
    """λ for each of ``iterations`` iterations; ``None`` for the ``dynamic`` rule.

    * ``"linear"``: ``linspace(lam_start, lam_end, K)`` (the authors' 0.5 → 0.1);
    * ``"constant"``: ``lam_start`` every iteration; a float: that value every iteration;
    * a sequence: used as given (its length must be K);
    * ``"dynamic"``: computed per iteration and sample by :func:`dynamic_step`.
    """
    if isinstance(lam, str):
        if lam == "linear":
            if iterations == 1:
                return [float(lam_start)]
            return torch.linspace(lam_start, lam_end, iterations, dtype=torch.float64).tolist()
        if lam == "constant":
            return [float(lam_start)] * iterations
        if lam == "dynamic":
            return None
        raise ValueError(f"lam: {lam!r} is not one of 'linear', 'constant', 'dynamic'")
    if isinstance(lam, (int, float)):
        return [float(lam)] * iterations
    values = [float(v) for v in lam]
    if len(values) != iterations:
        raise ValueError(f"lam: {len(values)} step sizes given for {iterations} iterations")
    return values


def dynamic_step(h: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """The paper's "dynamic" rule ``λ = scale / max|h|`` per sample (h un-normalised).

    Applied to a raw ``h`` this moves x_t by ``scale`` in max-norm, like ``scale·h/max|h|``.
    """
    amax = batch_amax(h)
    return torch.where(amax > 0, scale / amax.clamp_min(torch.finfo(h.dtype).tiny), 0.0)
