"""Where a training loop stands, and what one call may spend: the pieces that make runs resumable.

A loop keeps its step, losses and time spent in a :class:`Progress`; when it stops (finished, or
its call's :class:`Budget` is spent) it stores the optimizer's, schedule's and EMA's state there,
and a later call hands the same :class:`Progress` back to carry on exactly where it stopped.
The learning-rate schedule is diffusers' warm-up + cosine decay, advanced to the run's progress
``max(step, elapsed / max_minutes × steps)`` with ``elapsed`` summed over all calls.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.optimization import get_scheduler
from torch.optim.lr_scheduler import LRScheduler

from layerdecomp.training.config import UNetConfig, VAEConfig

Log = Callable[[str], None]

LR_SCHEDULE = "cosine"
"""The diffusers schedule both loops use: linear warm-up, then cosine decay to 0."""


@dataclass
class Progress:
    """A loop's position, carried from one call to the next.

    Attributes:
        step: Steps taken so far.
        losses: The loss of every step taken.
        elapsed: Seconds spent in the loop over all calls.
        done: Whether the loop has finished (all steps, or its ``max_minutes``).
        states: ``optimizer`` / ``schedule`` / ``ema`` state dicts at the stop (empty before).
    """

    step: int = 0
    losses: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    done: bool = False
    states: dict[str, Any] = field(default_factory=dict)


@dataclass
class Budget:
    """What one call may spend: wall-clock minutes and steps (0: no limit), from its creation.

    Attributes:
        max_minutes: Stop once this many minutes have passed since ``start``.
        max_steps: Stop once this many steps were taken in this call (all loops together).
        start: ``time.monotonic()`` at the call's start.
        steps: Steps taken in this call so far.
    """

    max_minutes: float = 0.0
    max_steps: int = 0
    start: float = field(default_factory=time.monotonic)
    steps: int = 0

    def spent(self) -> bool:
        """Whether the call must stop now."""
        if self.max_steps > 0 and self.steps >= self.max_steps:
            return True
        return self.max_minutes > 0 and time.monotonic() - self.start >= 60 * self.max_minutes


def lr_schedule(opt: torch.optim.Optimizer, cfg: VAEConfig | UNetConfig) -> LRScheduler:
    """diffusers' warm-up + cosine schedule over ``cfg.steps`` steps (``cfg.warmup`` warm-up).

    Args:
        opt: The optimizer whose learning rate (``cfg.lr``) is scheduled.
        cfg: The loop's config.

    Returns:
        The scheduler; drive it with :func:`advance_schedule`.
    """
    return get_scheduler(
        LR_SCHEDULE, opt, num_warmup_steps=cfg.warmup, num_training_steps=max(cfg.steps, 1)
    )


def advance_schedule(
    schedule: LRScheduler, step: int, cfg: VAEConfig | UNetConfig, elapsed: float
) -> int:
    """Step the schedule up to the run's progress, in steps.

    The progress is ``step``, or, with a time limit, the share of ``max_minutes`` spent times
    ``cfg.steps`` when that is further along (a slow machine anneals before its time runs out).

    Args:
        schedule: From :func:`lr_schedule`.
        step: The index of the step about to be taken.
        cfg: The loop's config.
        elapsed: Seconds the loop has run (over all calls).

    Returns:
        The schedule's position (``schedule.last_epoch``).
    """
    target = step
    if cfg.max_minutes > 0:
        target = max(target, min(cfg.steps, int(cfg.steps * elapsed / (60 * cfg.max_minutes))))
    with warnings.catch_warnings():
        # a resumed call steps the loaded schedule before its new optimizer has stepped
        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
        while schedule.last_epoch < target:
            schedule.step()
    return schedule.last_epoch


class Stepper:
    """Drives one loop's steps against its config's limits and the call's budget.

    Args:
        name: The loop's name in log lines (``"vae"``, ``"unet"``).
        cfg: The loop's config (``steps``, ``max_minutes``).
        progress: Updated in place; a finished one runs no step.
        budget: The call's budget (none: unlimited).
        log: Receives the stop reason.
    """

    def __init__(
        self,
        name: str,
        cfg: VAEConfig | UNetConfig,
        progress: Progress,
        budget: Budget | None,
        log: Log,
    ) -> None:
        self.name, self.cfg, self.progress, self.log = name, cfg, progress, log
        self.budget = budget or Budget()
        self.pending: list[torch.Tensor] = []
        self.start = time.monotonic()
        self.before = progress.elapsed

    def elapsed(self) -> float:
        """Seconds spent in the loop over all calls."""
        return self.before + time.monotonic() - self.start

    def begin(self, schedule: LRScheduler) -> bool:
        """Whether to take step ``progress.step``; sets its learning rate if so.

        Returns False when the loop is finished (all steps, or its time limit: ``done`` is set)
        or when the call's budget is spent (``done`` stays False: a later call continues).
        """
        p, cfg = self.progress, self.cfg
        elapsed = self.elapsed()
        if p.step >= cfg.steps:
            p.done = True
        elif cfg.max_minutes > 0 and elapsed > 60 * cfg.max_minutes:
            self.log(f"{self.name}: time limit of {cfg.max_minutes} min reached at step {p.step}")
            p.done = True
        if p.done:
            return False
        if self.budget.spent():
            self.log(f"{self.name}: this call's budget is spent at step {p.step}; run again")
            return False
        advance_schedule(schedule, p.step, cfg, elapsed)
        return True

    def end(self, loss: torch.Tensor | float) -> None:
        """Record a step's loss: a float, or a 0-d tensor kept on its device until :meth:`read`."""
        if isinstance(loss, torch.Tensor):
            self.pending.append(loss.detach().reshape(()))
        else:
            self.read()
            self.progress.losses.append(float(loss))
        self.progress.step += 1
        self.budget.steps += 1

    def read(self) -> None:
        """Move the pending losses into ``progress.losses`` (one device synchronisation)."""
        if self.pending:
            self.progress.losses.extend(torch.stack(self.pending).float().cpu().tolist())
            self.pending.clear()

    def stop(self, **states: Any) -> None:
        """Store the time spent and the states to resume from (``name=obj.state_dict()``)."""
        self.read()
        self.progress.elapsed = self.elapsed()
        self.progress.states = states


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision="bf16"`` (on the loop's device), else nothing.

    Args:
        device: The device the models run on.
        precision: ``"fp32"`` or ``"bf16"``.

    Raises:
        ValueError: For another precision.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision {precision!r}; use 'fp32' or 'bf16'")
