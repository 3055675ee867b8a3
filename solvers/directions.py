"""Update directions for x_t: the inexact Newton step ``J·e`` (§3, eq. 9–10) and DPS's ``Jᵀe``.

Graikos, Jojic & Samaras (2024), §3 and Algorithm 1; ``docs/algorithm.md``, "The inexact-Newton
step".

Both share one signature so a caller switches with one argument::

    result = DIRECTIONS[name](denoiser, x_t, t, e, x0=x0)

``J = ∂x̂0/∂x_t``. The Newton direction is a finite difference of two forward passes (no graph);
the gradient direction backpropagates ``⟨x̂0(x_t), e⟩`` through the denoiser. δ and the
normalisation are per sample, so a batch of independent problems behaves like separate runs.
NaN/Inf in ``e``, in x̂0 or in ``h`` raises :class:`~solvers.errors.NonFiniteError` (a NaN in
``e`` would otherwise give δ = 0 and h = 0: the constraint silently dropped): at once, or, with a
``guard`` (:class:`~solvers.errors.FiniteGuard`), when the guard is read, so that a loop of
directions never waits on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ._checks import batch_amax, check_like, check_tensor
from .errors import CONSTRAINT_ERROR, DIRECTION, X0, X0_PROBE, FiniteGuard
from .parameterization import DenoiserFn

DirectionName = Literal["newton", "gradient"]


@dataclass
class Direction:
    """A direction ``h`` for x_t, plus the cost of computing it.

    Attributes:
        h: the direction (same shape as x_t); max-normalised per sample when requested.
        x0: x̂0(x_t) at the unperturbed point (computed here if it was not given).
        nfe: denoiser forward evaluations spent.
        backward: backward passes through the denoiser spent.
    """

    h: torch.Tensor
    x0: torch.Tensor
    nfe: int
    backward: int = 0


def _normalize(h: torch.Tensor) -> torch.Tensor:
    scale = batch_amax(h)
    return torch.where(scale > 0, h / scale.clamp_min(torch.finfo(h.dtype).tiny), h)


def newton(
    denoiser: DenoiserFn,
    x_t: torch.Tensor,
    t: int | torch.Tensor,
    e: torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    delta0: float = 0.005,
    normalize: bool = True,
    guard: FiniteGuard | None = None,
) -> Direction:
    """Inexact Newton direction ``h ≈ J·e`` by a forward finite difference (§3, Algorithm 1).

    ``δ = δ0 / max|e|`` per sample; ``h = (x̂0(x_t + δe) − x̂0(x_t)) / δ``; then ``h / max|h|``.
    Runs under ``torch.no_grad``. Samples with ``e = 0`` get ``h = 0``; NaN/Inf in ``e``, ``x0``,
    either x̂0 or ``h`` raises :class:`~solvers.errors.NonFiniteError`.

    Args:
        denoiser: the x̂0 contract.
        x_t: batched latents (B, ...).
        t: the timestep (shared by the batch).
        e: error direction in model space, shape and dtype of ``x_t``.
        x0: x̂0(x_t) if already known (saves one forward pass).
        delta0: finite-difference scale; δ = delta0 / max|e| per sample.
        normalize: divide h by its per-sample max|h|.
        guard: queue the NaN/Inf checks there (default: check at once).
    """
    check = (guard or FiniteGuard(immediate=True)).check
    check_tensor("x_t", x_t)
    check_like("e", e, x_t, "x_t")
    if x0 is not None:
        check_like("x0", x0, x_t, "x_t")
    if delta0 <= 0:
        raise ValueError(f"delta0: must be positive, got {delta0}")
    check(e, CONSTRAINT_ERROR, t)
    nfe = 0
    with torch.no_grad():
        if x0 is None:  # a given x0 was checked where it was computed
            x0 = check(denoiser(x_t, t), X0, t)
            nfe += 1
        e_max = batch_amax(e)
        delta = torch.where(e_max > 0, delta0 / e_max.clamp_min(torch.finfo(e.dtype).tiny), 0.0)
        x0_shifted = check(denoiser(x_t + delta * e, t), X0_PROBE, t)
        nfe += 1
        h = check(
            torch.where(delta > 0, (x0_shifted - x0) / delta.clamp_min(1e-30), 0.0), DIRECTION, t
        )
    if normalize:
        h = _normalize(h)
    return Direction(h=h, x0=x0, nfe=nfe)


def gradient(
    denoiser: DenoiserFn,
    x_t: torch.Tensor,
    t: int | torch.Tensor,
    e: torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    delta0: float = 0.005,
    normalize: bool = True,
    guard: FiniteGuard | None = None,
) -> Direction:
    """DPS-style direction ``h = Jᵀe`` by backpropagation through the denoiser (§2.2, eq. 2).

    With ``e = Aᵀ(y − A·x̂0)`` this is ``−½∇_{x_t}‖A·x̂0(x_t) − y‖²``. One backward pass, and one
    forward pass with a graph unless ``x0`` carries one already: an ``x0`` computed from ``x_t``
    with autograd on (``x_t`` a leaf that requires grad: :func:`solvers.refine` keeps x̂0 so for
    this direction, see :data:`KEEPS_GRAPH`) is backpropagated as it is; any other ``x0`` is
    only checked, the forward being needed for the graph. ``delta0`` is ignored.
    """
    del delta0
    check = (guard or FiniteGuard(immediate=True)).check
    check_tensor("x_t", x_t)
    check_like("e", e, x_t, "x_t")
    if x0 is not None:
        check_like("x0", x0, x_t, "x_t")
    check(e, CONSTRAINT_ERROR, t)
    if x0 is not None and x0.requires_grad and x_t.requires_grad:
        (h,) = torch.autograd.grad(x0, x_t, grad_outputs=e.detach())
        x0_graph, nfe = x0, 0  # checked where it was computed
    else:
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            x0_graph = denoiser(x, t)
            check(x0_graph.detach(), X0, t)
            (h,) = torch.autograd.grad(x0_graph, x, grad_outputs=e.detach())
        nfe = 1
    check(h, DIRECTION, t)
    if normalize:
        h = _normalize(h)
    return Direction(h=h.detach(), x0=x0_graph.detach(), nfe=nfe, backward=1)


DIRECTIONS: dict[str, Callable[..., Direction]] = {"newton": newton, "gradient": gradient}

KEEPS_GRAPH = frozenset({"gradient"})
"""Directions that backpropagate through x̂0(x_t): :func:`solvers.refine` computes each x̂0 they
will use with its graph, so that one forward serves the constraint and the backward (DPS's
cost: one forward and one backward an iteration, where Newton spends two forwards)."""


def get_direction(name: str) -> Callable[..., Direction]:
    """Look a direction up by name (``newton`` or ``gradient``)."""
    try:
        return DIRECTIONS[name]
    except KeyError:
        raise ValueError(f"direction: {name!r} is not one of {sorted(DIRECTIONS)}") from None
