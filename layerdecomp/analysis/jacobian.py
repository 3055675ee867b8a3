"""The denoiser Jacobian's spectrum at chosen timesteps, and one of its columns against one row.

The measurement of issue #17 (``docs/algorithm.md``, "The inexact-Newton step"): at each ``t``
a clean latent is diffused with ONE noise draw (the same at every t), and
:func:`solvers.jacobian_spectrum` runs Arnoldi on ``J = ∂x̂0/∂x_t`` (``J·v`` by central finite
differences), on ``(J+Jᵀ)/2`` and ``(J−Jᵀ)/2`` (``Jᵀ·v`` by autograd at the same t), and estimates
``‖J−Jᵀ‖_F/‖J‖_F`` by Hutchinson probes. ``exact=True`` also builds the dense J by autograd
(small latents only) for its exact eigenvalues. :func:`column_and_row` gives one column ``J·e_i``
(finite difference) and the matching row ``Jᵀ·e_i`` (autograd) at one latent cell.

Seeds: with ``seed`` s, the noise draw is ``Generator().manual_seed(s)`` and the Arnoldi start
vector and probes at timestep t come from ``manual_seed(s + t)``, so a run is reproducible
from (latent, s) alone. ``layerdecomp analyze jacobian`` and ``benchmarks/jacobian_spectrum.py``
both call these functions; :mod:`.table` and :mod:`.plots` present the rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

import solvers
from solvers.parameterization import is_flow_scheduler

from ..errors import InputError

TIMESTEPS: tuple[int, ...] = (900, 700, 500, 300)
"""The timesteps of the published measurement, on a 1000-step schedule."""

PUBLISHED: dict[int, tuple[float, float, float]] = {
    900: (16.85, 16.44, 2.67),
    700: (8.45, 8.65, 3.35),
    500: (7.88, 9.00, 2.51),
    300: (4.98, 6.52, 1.22),
}
"""The authors' largest |eigenvalue| on SD 1.x at t (1000-step schedule): J, (J+Jᵀ)/2, (J−Jᵀ)/2."""

PART_LABELS: dict[str, str] = {"jacobian": "J", "symmetric": "(J+Jᵀ)/2", "skew": "(J−Jᵀ)/2"}
"""The three operators (:data:`solvers.spectrum.PARTS`) and how tables and plots name them."""

MAX_EXACT = 4096
"""The largest latent (entries) whose dense Jacobian ``exact=True`` builds: n backward passes."""


def schedule_length(scheduler: Any) -> int:
    """The training schedule's length T (``num_train_timesteps``)."""
    return int(scheduler.config.num_train_timesteps)


def default_timesteps(scheduler: Any, timesteps: Iterable[int] = TIMESTEPS) -> list[int]:
    """``timesteps`` (given on a 1000-step schedule) scaled to ``scheduler``'s length."""
    length = schedule_length(scheduler)
    return [round(t * length / 1000) for t in timesteps]


def timestep_range(scheduler: Any) -> tuple[int, int]:
    """The valid timesteps, both ends included: 0…T−1 (an index into ᾱ), or 1…T for a flow
    schedule (σ = t/T; t = 0 would be the clean sample itself)."""
    length = schedule_length(scheduler)
    return (1, length) if is_flow_scheduler(scheduler) else (0, length - 1)


def check_timesteps(timesteps: Iterable[int], scheduler: Any) -> list[int]:
    """The timesteps, repeats dropped, each checked against the schedule.

    Raises:
        InputError: none given, or one outside :func:`timestep_range`.
    """
    chosen = list(dict.fromkeys(int(t) for t in timesteps))
    if not chosen:
        raise InputError("timesteps: none given")
    low, high = timestep_range(scheduler)
    for t in chosen:
        if not low <= t <= high:
            raise InputError(
                f"timestep {t} is outside the model's schedule ({low} to {high}, "
                f"{schedule_length(scheduler)} training steps)"
            )
    return chosen


def diffuse(denoiser: solvers.Denoiser, latent: torch.Tensor, t: int, seed: int = 0):
    """``latent`` diffused to ``t`` with the noise draw of ``seed`` (the same at every t)."""
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed))
    return solvers.add_noise(latent, noise.to(latent.device), t, denoiser.scheduler)


def exact_spectrum(denoiser, x_t: torch.Tensor, t: int) -> tuple[dict[str, float], torch.Tensor]:
    """Top |eigenvalue| of the dense J and of its two parts, the exact asymmetry, and J's
    eigenvalues (complex128, CPU)."""
    j = solvers.jacobian_matrix(denoiser, x_t, t, chunk=32).double().cpu()
    eigenvalues = torch.linalg.eigvals(j)
    tops = {
        "jacobian": eigenvalues.abs().max().item(),
        "symmetric": torch.linalg.eigvalsh((j + j.T) / 2).abs().max().item(),
        "skew": torch.linalg.eigvals((j - j.T) / 2).abs().max().item(),
        "asymmetry": ((j - j.T).norm() / j.norm()).item(),
    }
    return tops, eigenvalues


@dataclass
class SpectrumRow:
    """The measurement at one timestep.

    Attributes:
        t: the timestep.
        top: ``"jacobian"``, ``"symmetric"``, ``"skew"`` → largest |Ritz value| (Arnoldi).
        asymmetry: ``‖J−Jᵀ‖_F/‖J‖_F`` by Hutchinson; ``asymmetry_stderr`` its jackknife error.
        ritz: J's Ritz values (complex128, CPU), by decreasing modulus.
        nfe, backward: denoiser forward and backward passes spent (the dense J's not counted).
        seconds: wall time of the row, the dense J included.
        exact: with ``exact=True``: the dense J's top |eigenvalue| per part and its asymmetry.
        exact_eigenvalues: with ``exact=True``: every eigenvalue of the dense J.
    """

    t: int
    top: dict[str, float]
    asymmetry: float
    asymmetry_stderr: float
    ritz: torch.Tensor
    nfe: int
    backward: int
    seconds: float
    exact: dict[str, float] | None = None
    exact_eigenvalues: torch.Tensor | None = field(default=None, repr=False)

    def record(self, ritz: int = 8) -> dict[str, Any]:
        """JSON-ready: every number but the eigenvalue lists, and the first ``ritz`` Ritz values
        as ``[real, imaginary]`` pairs."""
        out: dict[str, Any] = {
            "t": self.t,
            "top": dict(self.top),
            "asymmetry": self.asymmetry,
            "asymmetry_stderr": self.asymmetry_stderr,
            "ritz": [[z.real, z.imag] for z in self.ritz[:ritz].tolist()],
            "nfe": self.nfe,
            "backward": self.backward,
            "seconds": round(self.seconds, 4),
        }
        if self.exact is not None:
            out["exact"] = dict(self.exact)
        return out


def spectrum_row(
    denoiser: solvers.Denoiser,
    latent: torch.Tensor,
    t: int,
    *,
    krylov: int = 30,
    probes: int = 16,
    seed: int = 0,
    exact: bool = False,
    delta0: float = 1e-3,
) -> SpectrumRow:
    """Arnoldi on J and its two parts, and the asymmetry, at ``latent`` diffused to ``t``.

    Args:
        denoiser: the x̂0 contract with its ``scheduler`` (for the diffusion to t).
        latent: the clean latent (1, ...), on the denoiser's device.
        t: the timestep of x_t and of every product.
        krylov: Krylov size per operator.
        probes: Hutchinson probes (≥ 2).
        seed: the noise draw; the start vector and probes use ``seed + t``.
        exact: also the dense J (at most :data:`MAX_EXACT` entries).
        delta0: the finite difference's scale in max-norm.

    Raises:
        InputError: ``exact`` on a latent over :data:`MAX_EXACT` entries.
        NonFiniteError: NaN/Inf from the denoiser.
    """
    if exact and latent.numel() > MAX_EXACT:
        raise InputError(
            f"exact: the latent has {latent.numel()} entries, the dense Jacobian is built for "
            f"at most {MAX_EXACT} (use a smaller size)"
        )
    start = time.perf_counter()
    x_t = diffuse(denoiser, latent, t, seed)
    spectrum = solvers.jacobian_spectrum(
        denoiser,
        x_t,
        t,
        size=krylov,
        probes=probes,
        delta0=delta0,
        generator=torch.Generator().manual_seed(seed + t),
    )
    row = SpectrumRow(
        t=int(t),
        top={part: spectrum.top(part) for part in PART_LABELS},
        asymmetry=spectrum.asymmetry,
        asymmetry_stderr=spectrum.asymmetry_stderr,
        ritz=spectrum.parts["jacobian"].eigenvalues.cpu(),
        nfe=spectrum.nfe,
        backward=spectrum.backward,
        seconds=0.0,
    )
    if exact:
        row.exact, row.exact_eigenvalues = exact_spectrum(denoiser, x_t, t)
    row.seconds = time.perf_counter() - start
    return row


@dataclass
class ColumnRow:
    """One column ``J·e_i`` (finite difference) and one row ``Jᵀ·e_i`` (autograd), shaped like
    one latent sample (C, h, w), at cell i = (channel, y, x); ``nfe`` and ``backward`` are the
    denoiser passes spent."""

    t: int
    cell: tuple[int, int, int]
    column: torch.Tensor
    row: torch.Tensor
    nfe: int = 0
    backward: int = 0

    @property
    def cosine(self) -> float:
        """cos(J·e_i, Jᵀ·e_i): 1 for a symmetric J."""
        a, b = self.column.flatten().double(), self.row.flatten().double()
        return float(torch.nn.functional.cosine_similarity(a, b, dim=0))

    @property
    def relative(self) -> float:
        """‖J·e_i − Jᵀ·e_i‖ / ‖J·e_i‖."""
        return float((self.column - self.row).norm() / self.column.norm())

    @property
    def diagonal(self) -> float:
        """J_ii, the column's entry at its own cell."""
        return float(self.column[self.cell])

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (the maps themselves are in the plot)."""
        return {
            "t": self.t,
            "cell": list(self.cell),
            "cosine": self.cosine,
            "relative_difference": self.relative,
            "diagonal": self.diagonal,
            "nfe": self.nfe,
            "backward": self.backward,
        }


def centre_cell(latent: torch.Tensor) -> tuple[int, int, int]:
    """(channel 0, the middle row, the middle column) of a (1, C, h, w) latent."""
    return 0, latent.shape[-2] // 2, latent.shape[-1] // 2


def column_and_row(
    denoiser: solvers.Denoiser,
    latent: torch.Tensor,
    t: int,
    *,
    seed: int = 0,
    cell: Sequence[int] | None = None,
    delta0: float = 1e-3,
) -> ColumnRow:
    """``J·e_i`` and ``Jᵀ·e_i`` at ``latent`` diffused to ``t`` (noise of ``seed``), cell i
    (default :func:`centre_cell`)."""
    chosen = tuple(int(c) for c in (cell if cell is not None else centre_cell(latent)))
    if len(chosen) != latent.dim() - 1:
        raise ValueError(f"cell: expected {latent.dim() - 1} indices, got {chosen}")
    x_t = diffuse(denoiser, latent, t, seed)
    products = solvers.JacobianProducts(denoiser, x_t, t, delta0=delta0)
    basis = torch.zeros_like(x_t)
    basis[(0, *chosen)] = 1.0
    column, row = products.jvp(basis)[0].cpu(), products.vjp(basis)[0].cpu()
    return ColumnRow(
        t=int(t),
        cell=chosen,  # type: ignore[arg-type]
        column=column,
        row=row,
        nfe=products.nfe,
        backward=products.backward,
    )


__all__ = [
    "MAX_EXACT",
    "PART_LABELS",
    "PUBLISHED",
    "TIMESTEPS",
    "ColumnRow",
    "SpectrumRow",
    "centre_cell",
    "check_timesteps",
    "column_and_row",
    "default_timesteps",
    "diffuse",
    "exact_spectrum",
    "schedule_length",
    "spectrum_row",
    "timestep_range",
]
