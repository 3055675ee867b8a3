"""NaN/Inf is an error, never a silent no-op: :class:`NonFiniteError` and the cheap check behind it.

A NaN in the constraint error ``e`` would otherwise give ``δ = 0`` and ``h = 0`` (``max|e| > 0`` is
false for NaN): the constraint would be dropped silently and the run would finish. Every solver
therefore checks each tensor it uses — x̂0 from the denoiser, the constraint's ``e`` and residual,
the direction ``h`` and the latent it steps — and raises a :class:`NonFiniteError` naming where it
happened.

Inside the solvers' loops the checks are deferred (:class:`FiniteGuard`): each one queues a count
of the non-finite values on the device and records where it was made, and the guard reads all the
counts back once (at the end of :func:`solvers.sample`, or of a :func:`solvers.refine` called on
its own), so a GPU never waits on the host inside the loop. The error names the first check that
failed, exactly as an immediate check would have.
"""

from __future__ import annotations

import torch

X0 = "x̂0"
X0_PROBE = "x̂0 at the finite-difference probe x_t + δ·e"
CONSTRAINT_ERROR = "the constraint error e"
CONSTRAINT_RESIDUAL = "the constraint residual"
DIRECTION = "the direction h"
X_T = "x_t"
SCHEDULER_OUTPUT = "the scheduler step's output"

_BAD_CONSTRAINT = "a bad constraint? (its error(x0) returned NaN/Inf for a finite x̂0)"
HALF_OVERFLOW = "a float16 overflow in the model? run the model in float32"
_HINTS = {
    CONSTRAINT_ERROR: _BAD_CONSTRAINT,
    CONSTRAINT_RESIDUAL: _BAD_CONSTRAINT,
    X_T: "the starting latent was NaN/Inf, or the step before it diverged",
    SCHEDULER_OUTPUT: "the scheduler diverged from a finite x̂0 (a bad schedule?)",
}


class NonFiniteError(FloatingPointError):
    """A solver met NaN/Inf in x̂0, the constraint's error or residual, or a direction.

    A :class:`FloatingPointError` (an :class:`ArithmeticError`), not a :class:`ValueError`: the
    arguments were valid, the numbers went bad while running (a float16 overflow in the model, a
    constraint that divides by zero). Code that maps ``ValueError`` to "bad option" does not
    mistake it for one; catch ``solvers.NonFiniteError`` (or ``FloatingPointError``).

    Attributes:
        quantity: what was not finite (``"x̂0"``, ``"the constraint error e"``...).
        timestep: the diffusion timestep, when known.
        iteration: 0-based index of the direction iteration (``iterations`` = after the last).
        iterations: K, the iterations at this noise level.
        step: 0-based index of the sampling step (the ``step`` of :func:`solvers.sample`'s
            callback); ``None`` outside :func:`solvers.sample`.
        steps: the number of sampling steps.
        restart: the warm restart (0 = the first run); ``None`` outside :func:`solvers.sample`.
        count, total: how many of how many values were NaN/Inf.
        hint: the likely cause.
    """

    def __init__(
        self,
        quantity: str,
        *,
        timestep: float | None = None,
        count: int = 0,
        total: int = 0,
        hint: str = "",
    ) -> None:
        super().__init__(quantity)
        self.quantity, self.timestep, self.count, self.total = quantity, timestep, count, total
        self.hint = hint or _HINTS.get(quantity, "")
        self.iteration: int | None = None
        self.iterations: int | None = None
        self.step: int | None = None
        self.steps: int | None = None
        self.restart: int | None = None

    def locate(self, **where) -> NonFiniteError:
        """Fill in the context a caller knows (fields already set are kept); returns ``self``."""
        for key, value in where.items():
            if key not in ("timestep", "iteration", "iterations", "step", "steps", "restart"):
                raise TypeError(f"locate: unknown field {key!r}")
            if getattr(self, key) is None:
                setattr(self, key, value)
        return self

    def where(self) -> str:
        """``"step 4 of 20 (timestep 801), iteration 2 of 5"``, as much as is known."""
        t = "" if self.timestep is None else f"timestep {format_timestep(self.timestep)}"
        if self.step is not None:
            of = f" of {self.steps}" if self.steps else ""
            place = f"step {self.step + 1}{of}" + (f" ({t})" if t else "")
            if self.restart:
                place = f"restart {self.restart}, {place}"
        else:
            place = t
        if self.iteration is not None and self.iterations:
            if self.iteration < self.iterations:
                it = f"iteration {self.iteration + 1} of {self.iterations}"
            else:
                it = f"after the last iteration ({self.iterations})"
            place = f"{place}, {it}" if place else it
        return place

    def __str__(self) -> str:
        place = self.where()
        values = f" ({self.count} of {self.total} values)" if self.total else ""
        message = f"{self.quantity} is NaN/Inf{values}"
        if place:
            message = f"{place}: {message}"
        return f"{message} — {self.hint}" if self.hint else message


def format_timestep(t: float | int | torch.Tensor) -> str:
    """``850`` for integer timesteps, ``979.5`` for fractional (flow) ones."""
    value = float(t.item()) if isinstance(t, torch.Tensor) else float(t)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _timestep(t: float | int | torch.Tensor | None) -> float | None:
    if t is None:
        return None
    return float(t.item()) if isinstance(t, torch.Tensor) else float(t)


def check_finite(
    value: torch.Tensor, quantity: str, t: float | int | torch.Tensor | None = None
) -> torch.Tensor:
    """Return ``value`` if every entry is finite, else raise :class:`NonFiniteError`.

    One ``torch.isfinite(value).all()`` (a single device sync); the count is computed only on
    failure. A model-output quantity gets the float16 hint when ``value`` is half precision.
    """
    if bool(torch.isfinite(value).all()):
        return value
    bad = int((~torch.isfinite(value)).sum())
    hint = _hint(value, quantity)
    raise NonFiniteError(quantity, timestep=_timestep(t), count=bad, total=value.numel(), hint=hint)


def _hint(value: torch.Tensor, quantity: str) -> str:
    hint = _HINTS.get(quantity, "")
    if not hint:  # x̂0 or a direction: the model (or its backward pass) produced it
        if value.dtype in (torch.float16, torch.bfloat16):
            hint = HALF_OVERFLOW
        else:
            hint = "the model diverged, or x_t was far outside its training range"
    return hint


class FiniteGuard:
    """NaN/Inf checks without a host read per check: counts queued on the device, read once.

    ``check(value, quantity, t)`` queues ``(~isfinite(value)).sum()`` and records the quantity,
    the timestep, the hint and the location set with :meth:`at` (the iteration, the sampling
    step...). :meth:`raise_if_bad` reads every queued count in one transfer and raises the
    :class:`NonFiniteError` of the first check that found NaN/Inf. A guard that is ``immediate``
    checks at once instead (one device read per check), for code that wants to stop at the first
    bad value.
    """

    def __init__(self, immediate: bool = False) -> None:
        self.immediate = immediate
        self._counts: list[torch.Tensor] = []
        self._records: list[tuple[str, float | int | None, int, str, dict]] = []
        self._where: dict = {}

    def at(self, **where) -> FiniteGuard:
        """Set the location recorded with the following checks (``iteration=2, iterations=5``;
        ``step=3, steps=20, restart=0``); keys already set are replaced."""
        self._where = {**self._where, **where}
        return self

    def check(
        self, value: torch.Tensor, quantity: str, t: float | int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Queue the check of ``value`` (or run it now when ``immediate``); returns ``value``."""
        if self.immediate:
            try:
                return check_finite(value, quantity, t)
            except NonFiniteError as exc:
                raise exc.locate(**self._where) from None
        self._counts.append((~torch.isfinite(value.detach())).sum())
        self._records.append((quantity, t, value.numel(), _hint(value, quantity), self._where))
        return value

    def raise_if_bad(self, *extra: torch.Tensor) -> list[float]:
        """Read the queued counts (one transfer) and raise for the first non-zero; then clear.

        ``extra`` scalars (a convergence measure, say) are read in the same transfer and their
        values returned, so a loop that must read one number pays one read for both.
        """
        if not self._counts and not extra:
            return []
        device = (self._counts or list(extra))[0].device
        values = [c.to(device=device, dtype=torch.float32) for c in (*self._counts, *extra)]
        read = torch.stack([v.reshape(()) for v in values]).tolist()
        counts, wanted = read[: len(self._counts)], read[len(self._counts) :]
        records, self._counts, self._records = self._records, [], []
        for count, (quantity, t, total, hint, where) in zip(counts, records, strict=True):
            if count:
                t = where.get("timestep") if t is None else t
                error = NonFiniteError(
                    quantity, timestep=_timestep(t), count=int(count), total=total, hint=hint
                )
                raise error.locate(**{k: v for k, v in where.items() if k != "timestep"})
        return wanted


__all__ = ["FiniteGuard", "NonFiniteError", "check_finite", "format_timestep"]
