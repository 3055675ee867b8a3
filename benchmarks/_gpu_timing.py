"""Timing for ``gpu_suite.py``: CUDA-event medians of interleaved calls, and graphed denoisers.

On a GPU each call is bracketed by two CUDA events and nothing synchronises between calls, so a
time is what the GPU timeline spent on the call: its kernels when the GPU is the bottleneck, the
host's launch time when the host is (the GPU idles between the events). One synchronisation at
the end reads all events. On the CPU (the dry run) ``time.perf_counter`` replaces the events.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from layerdecomp.models.compiled import GraphedCall, synchronize
from solvers import Denoiser


@dataclass
class Timing:
    """Seconds of each timed call."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min(self) -> float:
        return min(self.seconds)


def time_calls(
    calls: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int = 3
) -> dict[str, Timing]:
    """Time each call ``repeats`` times, interleaved, after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    synchronize(device)
    if device.type != "cuda":
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(repeats):
            for name, fn in calls.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        return {name: Timing(ts) for name, ts in times.items()}
    events: dict[str, list[tuple[torch.cuda.Event, torch.cuda.Event]]] = {n: [] for n in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            events[name].append((start, end))
    synchronize(device)
    return {
        name: Timing([s.elapsed_time(e) / 1e3 for s, e in pairs]) for name, pairs in events.items()
    }


def time_once(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """Wall seconds of one synchronised call, and its result."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def graph(fn: Callable[..., Any], *example: torch.Tensor) -> Callable[..., Any]:
    """``fn`` captured in a CUDA graph (:class:`GraphedCall`); on the CPU ``fn`` itself."""
    if example[0].device.type != "cuda":
        return fn
    return GraphedCall(fn, *example)


def graphed_denoisers(denoiser: Denoiser, x_t: torch.Tensor, t: int) -> tuple[Denoiser, Denoiser]:
    """Denoisers whose network call replays a CUDA graph: without a graph (for Newton) and with
    its backward (``torch.cuda.make_graphed_callables``, for the gradient direction).

    Only ``denoiser.model_fn`` (the network with conditioning bound) is captured, with the
    timestep as a device scalar written by ``fill_`` (no sync); the x̂0 conversion stays eager.
    On the CPU both are ``denoiser`` itself (the dry run).
    """
    if x_t.device.type != "cuda":
        return denoiser, denoiser
    step = torch.full((), t, device=x_t.device)

    def forward(x: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return denoiser.model_fn(x, tt)

    plain = GraphedCall(forward, x_t, step)
    with_grad = torch.cuda.make_graphed_callables(
        denoiser.model_fn, (x_t.detach().clone().requires_grad_(True), step)
    )

    def graphed_grad(x: torch.Tensor, tt: int) -> torch.Tensor:
        step.fill_(tt)
        return with_grad(x, step)

    def new(model_fn) -> Denoiser:
        return Denoiser(model_fn, denoiser.scheduler, denoiser.prediction_type)

    return new(lambda x, tt: plain(x, tt).clone()), new(graphed_grad)


def count_syncs(fn: Callable[[], object], device: torch.device) -> int | None:
    """Host synchronisations during one call of ``fn`` (``torch.cuda.set_sync_debug_mode``
    warnings: ``.item()``, ``bool(tensor)``, a blocking host-to-device copy...); ``None`` on
    the CPU. A diagnostic: never use it around a timed call (the checks cost time)."""
    if device.type != "cuda":
        return None
    synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)
