"""The denoiser Jacobian's spectrum: Arnoldi on J, (J+Jᵀ)/2 and (J−Jᵀ)/2, and its asymmetry.

The evidence behind §3's claim that the direction ``J·e`` can stand in for ``Jᵀe``: if the
Jacobian ``J = ∂x̂0/∂x_t`` of a trained denoiser were symmetric (it is for the exact posterior
mean), the two directions would coincide. :class:`JacobianProducts` gives matrix-free products at
one ``(x_t, t)``: ``J·v`` by a finite difference (as :func:`solvers.newton` computes it) and
``Jᵀ·v`` by autograd, both at the SAME t. :func:`arnoldi` turns any such product into Ritz
values; :func:`jacobian_spectrum` runs it on the three operators and estimates
``‖J − Jᵀ‖_F / ‖J‖_F`` with Hutchinson probes. ``docs/algorithm.md`` ("The inexact-Newton step")
describes the two directions; ``benchmarks/jacobian_spectrum.py`` measures a model.

Everything acts on one tensor shaped like ``x_t`` (batch 1 is the usual case; a larger batch is
treated as one long vector). NaN/Inf from the denoiser raises
:class:`~solvers.errors.NonFiniteError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._checks import check_like, check_tensor
from .errors import X0, X0_PROBE, check_finite
from .parameterization import DenoiserFn

Operator = Callable[[torch.Tensor], torch.Tensor]
"""A linear map on tensors shaped like ``x_t``: ``operator(v) -> A·v``."""

PARTS: tuple[str, ...] = ("jacobian", "symmetric", "skew")


class JacobianProducts:
    """Matrix-free ``J·v``, ``Jᵀ·v`` and the symmetric and skew parts at one ``(x_t, t)``.

    ``J·v`` is a finite difference with ``δ = delta0 / max|v|`` (the probe moves x_t by
    ``delta0`` in max-norm, as in :func:`solvers.newton`): central
    ``(x̂0(x_t + δv) − x̂0(x_t − δv)) / 2δ`` (error O(δ²), 2 forward passes) or forward
    ``(x̂0(x_t + δv) − x̂0(x_t)) / δ`` (1 forward pass, x̂0(x_t) is computed once). ``Jᵀ·v`` is
    one backward pass through a graph of x̂0(x_t) built once and kept.

    Args:
        denoiser: the x̂0 contract.
        x_t: the point (B, ...), usually B = 1.
        t: the timestep, shared by every product (``J`` and ``Jᵀ`` at the same t).
        delta0: finite-difference scale in max-norm.
        central: central differences (default) instead of forward ones.

    Attributes:
        nfe: forward passes spent so far (the graph's forward pass included).
        backward: backward passes spent so far.
    """

    def __init__(
        self,
        denoiser: DenoiserFn,
        x_t: torch.Tensor,
        t: int | torch.Tensor,
        *,
        delta0: float = 1e-3,
        central: bool = True,
    ) -> None:
        check_tensor("x_t", x_t)
        if delta0 <= 0:
            raise ValueError(f"delta0: must be positive, got {delta0}")
        self.denoiser, self.x_t, self.t = denoiser, x_t.detach(), t
        self.delta0, self.central = float(delta0), central
        self.nfe = self.backward = 0
        self._x0: torch.Tensor | None = None
        self._graph: tuple[torch.Tensor, torch.Tensor] | None = None

    def _forward(self, x: torch.Tensor, quantity: str) -> torch.Tensor:
        with torch.no_grad():
            out = self.denoiser(x, self.t)
        self.nfe += 1
        return check_finite(out, quantity, self.t)

    @property
    def x0(self) -> torch.Tensor:
        """x̂0(x_t), computed on first use."""
        if self._x0 is None:
            self._x0 = self._forward(self.x_t, X0)
        return self._x0

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        """``J·v`` by a finite difference; ``v = 0`` gives 0."""
        check_like("v", v, self.x_t, "x_t")
        scale = v.detach().abs().max()
        if scale == 0:
            return torch.zeros_like(v)
        delta = self.delta0 / scale
        plus = self._forward(self.x_t + delta * v, X0_PROBE)
        if self.central:
            minus = self._forward(self.x_t - delta * v, X0_PROBE)
            return (plus - minus) / (2 * delta)
        return (plus - self.x0) / delta

    def vjp(self, v: torch.Tensor) -> torch.Tensor:
        """``Jᵀ·v`` by autograd through x̂0(x_t) at the same t (the graph is built once)."""
        check_like("v", v, self.x_t, "x_t")
        if self._graph is None:
            with torch.enable_grad():
                x = self.x_t.clone().requires_grad_(True)
                out = self.denoiser(x, self.t)
            self.nfe += 1
            check_finite(out.detach(), X0, self.t)
            self._graph = (x, out)
            if self._x0 is None:
                self._x0 = out.detach()
        x, out = self._graph
        (g,) = torch.autograd.grad(out, x, grad_outputs=v.detach(), retain_graph=True)
        self.backward += 1
        return check_finite(g.detach(), "Jᵀ·v", self.t)

    def symmetric(self, v: torch.Tensor) -> torch.Tensor:
        """``(J + Jᵀ)·v / 2``."""
        return (self.jvp(v) + self.vjp(v)) / 2

    def skew(self, v: torch.Tensor) -> torch.Tensor:
        """``(J − Jᵀ)·v / 2``."""
        return (self.jvp(v) - self.vjp(v)) / 2

    def operator(self, part: str) -> Operator:
        """The product for ``part``: ``"jacobian"``, ``"symmetric"`` or ``"skew"``."""
        table = {"jacobian": self.jvp, "symmetric": self.symmetric, "skew": self.skew}
        try:
            return table[part]
        except KeyError:
            raise ValueError(f"part: {part!r} is not one of {list(PARTS)}") from None


@dataclass
class ArnoldiResult:
    """Ritz values of an operator from an m-step Arnoldi process.

    Attributes:
        eigenvalues: Ritz values (complex128), by decreasing modulus.
        residuals: ``|h_{m+1,m}|·|last entry of the Ritz vector|`` for each Ritz value: the norm of
            ``A·u − λ·u`` for its unit Ritz vector ``u`` (0 after an exact breakdown).
        hessenberg: the (m+1, m) upper Hessenberg matrix H with ``A·Q_m = Q_{m+1}·H``.
        basis: the m+1 orthonormal Krylov vectors as rows (float64, flattened); after a
            breakdown only m rows, the last row of ``hessenberg`` is then zero.
        steps: m, the Krylov size reached (less than asked when an invariant subspace is found).
    """

    eigenvalues: torch.Tensor
    residuals: torch.Tensor
    hessenberg: torch.Tensor
    basis: torch.Tensor
    steps: int

    @property
    def top(self) -> float:
        """The largest |eigenvalue| estimate."""
        return float(self.eigenvalues[0].abs())


def arnoldi(
    operator: Operator,
    start: torch.Tensor,
    size: int = 30,
    *,
    breakdown: float = 1e-10,
) -> ArnoldiResult:
    """Arnoldi iteration: an orthonormal Krylov basis of ``operator`` and its Ritz values.

    Modified Gram-Schmidt, repeated once per step ("twice is enough"), in float64; the operator
    is applied in ``start``'s dtype and device. Stops early when ``h_{j+1,j}`` falls below
    ``breakdown·‖H‖`` (an invariant subspace: its Ritz values are exact eigenvalues).

    Args:
        operator: ``v -> A·v`` on tensors shaped like ``start``.
        start: the start vector (any non-zero tensor; it is normalised).
        size: m, the Krylov size (operator applications).
        breakdown: relative size of ``h_{j+1,j}`` at which the space counts as invariant.

    Raises:
        ValueError: ``size < 1``, or a zero / non-finite start vector.
        NonFiniteError: the operator returned NaN/Inf.
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected a positive int, got {size!r}")
    if not isinstance(start, torch.Tensor) or not start.is_floating_point():
        raise ValueError("start: expected a floating-point torch.Tensor")
    q = start.detach().reshape(-1).to(torch.float64)
    norm = q.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("start: must be a finite, non-zero vector")
    basis = [q / norm]
    h = torch.zeros(size + 1, size, dtype=torch.float64, device=q.device)
    steps = size
    for j in range(size):
        v = basis[j].to(start.dtype).reshape(start.shape)
        w = check_finite(operator(v).detach(), "the operator's output").reshape(-1)
        w = w.to(torch.float64)
        for _ in range(2):
            for i, qi in enumerate(basis):
                c = torch.dot(qi, w)
                h[i, j] += c
                w = w - c * qi
        h[j + 1, j] = w.norm()
        if h[j + 1, j] <= breakdown * max(float(h[: j + 2, : j + 1].norm()), 1e-300):
            h[j + 1, j] = 0.0
            steps = j + 1
            break
        basis.append(w / h[j + 1, j])
    h = h[: steps + 1, :steps]
    values, vectors = torch.linalg.eig(h[:steps, :steps])
    residuals = h[steps, steps - 1].abs() * vectors[steps - 1].abs()
    order = torch.argsort(values.abs(), descending=True)
    return ArnoldiResult(
        eigenvalues=values[order],
        residuals=residuals[order],
        hessenberg=h,
        basis=torch.stack(basis),
        steps=steps,
    )


def _rademacher(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    bits = torch.randint(0, 2, like.shape, generator=generator, device="cpu")
    return (2.0 * bits - 1.0).to(dtype=like.dtype, device=like.device)


def asymmetry(
    products: JacobianProducts, probes: int = 16, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """``‖J − Jᵀ‖_F / ‖J‖_F`` by Hutchinson: ``E‖(J−Jᵀ)z‖² = ‖J−Jᵀ‖²_F`` for Rademacher z.

    Returns:
        (the ratio of the summed squares' roots, its jackknife standard error).
    """
    if not isinstance(probes, int) or probes < 2:
        raise ValueError(f"probes: expected an int ≥ 2, got {probes!r}")
    diff, full = [], []
    for _ in range(probes):
        z = _rademacher(products.x_t, generator)
        jz = products.jvp(z).double()
        diff.append((jz - products.vjp(z).double()).pow(2).sum())
        full.append(jz.pow(2).sum())
    d, f = torch.stack(diff), torch.stack(full)
    ratio = float((d.sum() / f.sum()).sqrt())
    leave_one_out = ((d.sum() - d) / (f.sum() - f)).sqrt()
    spread = leave_one_out - leave_one_out.mean()
    stderr = float(((probes - 1) / probes * spread.pow(2).sum()).sqrt())
    return ratio, stderr


@dataclass
class JacobianSpectrum:
    """:func:`jacobian_spectrum`'s result at one timestep.

    Attributes:
        t: the timestep.
        parts: ``"jacobian"``, ``"symmetric"``, ``"skew"`` → its :class:`ArnoldiResult`.
        asymmetry: ``‖J − Jᵀ‖_F / ‖J‖_F`` (Hutchinson); ``asymmetry_stderr`` its jackknife error.
        nfe, backward: denoiser forward and backward passes spent.
    """

    t: float
    parts: dict[str, ArnoldiResult]
    asymmetry: float
    asymmetry_stderr: float
    nfe: int
    backward: int

    def top(self, part: str) -> float:
        """The largest |eigenvalue| of ``part``."""
        return self.parts[part].top


def jacobian_spectrum(
    denoiser: DenoiserFn,
    x_t: torch.Tensor,
    t: int | torch.Tensor,
    *,
    size: int = 30,
    probes: int = 16,
    parts: tuple[str, ...] = PARTS,
    start: torch.Tensor | None = None,
    delta0: float = 1e-3,
    central: bool = True,
    generator: torch.Generator | None = None,
) -> JacobianSpectrum:
    """Ritz values of J, (J+Jᵀ)/2 and (J−Jᵀ)/2 at ``(x_t, t)`` and the asymmetry of J.

    Args:
        denoiser: the x̂0 contract.
        x_t: the point (batch 1 is the usual case).
        t: the timestep of every product.
        size: Krylov size per part.
        probes: Hutchinson probes for the asymmetry.
        parts: which operators to run Arnoldi on.
        start: the Arnoldi start vector (default: Gaussian from ``generator``), the same for
            every part.
        delta0, central: the finite difference of :class:`JacobianProducts`.
        generator: seeds the start vector and the probes (on the CPU).
    """
    products = JacobianProducts(denoiser, x_t, t, delta0=delta0, central=central)
    if start is None:
        start = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
        start = start.to(x_t.device)
    check_like("start", start, x_t, "x_t")
    results = {part: arnoldi(products.operator(part), start, size) for part in parts}
    ratio, stderr = asymmetry(products, probes, generator)
    return JacobianSpectrum(
        t=float(t.item()) if isinstance(t, torch.Tensor) else float(t),
        parts=results,
        asymmetry=ratio,
        asymmetry_stderr=stderr,
        nfe=products.nfe,
        backward=products.backward,
    )


def jacobian_matrix(
    denoiser: DenoiserFn, x_t: torch.Tensor, t: int | torch.Tensor, *, chunk: int = 64
) -> torch.Tensor:
    """The dense Jacobian (n, n) of x̂0 at one sample ``x_t`` (1, ...), row by row by autograd.

    Rows come ``chunk`` at a time from one backward pass through a batch of ``chunk`` copies of
    x_t (so the denoiser must accept any batch size). For checks on small models only: n
    backward passes.
    """
    check_tensor("x_t", x_t)
    if x_t.shape[0] != 1:
        raise ValueError(f"x_t: expected one sample (1, ...), got shape {tuple(x_t.shape)}")
    n = x_t.numel()
    eye = torch.eye(n, dtype=x_t.dtype, device=x_t.device)
    rows = []
    for first in range(0, n, chunk):
        block = eye[first : first + chunk].reshape(-1, *x_t.shape[1:])
        with torch.enable_grad():
            x = x_t.detach().expand_as(block).clone().requires_grad_(True)
            out = denoiser(x, t)
            check_finite(out.detach(), X0, t)
            (g,) = torch.autograd.grad(out, x, grad_outputs=block)
        rows.append(g.detach().reshape(block.shape[0], n))
    return torch.cat(rows)


__all__ = [
    "PARTS",
    "ArnoldiResult",
    "JacobianProducts",
    "JacobianSpectrum",
    "Operator",
    "arnoldi",
    "asymmetry",
    "jacobian_matrix",
    "jacobian_spectrum",
]
