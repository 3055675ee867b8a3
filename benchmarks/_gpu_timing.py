"""Timing for ``gpu_suite.py``: CUDA-event medians of interleaved calls, and graphed denoisers.

On a GPU each call is bracketed by two CUDA events and nothing synchronises between calls, so a
time is what the GPU timeline spent on the call: its kernels when the GPU is the bottleneck, the
host's launch time when the host is (the GPU idles between the events). One synchronisation at
the end reads all events. On the CPU (the dry run) ``time.perf_counter`` replaces the events.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

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


def graphed_denoisers(
    denoiser: Denoiser, x_t: torch.Tensor, t: torch.Tensor
) -> tuple[Denoiser, Denoiser, str]:
    """Denoisers whose network call replays a CUDA graph: without a graph (for Newton) and with
    its backward (``torch.cuda.make_graphed_callables``, for the gradient direction).

    Only ``denoiser.model_fn`` (the network with conditioning bound) is captured; the x̂0
    conversion stays eager. On the CPU both are ``denoiser`` itself (the dry run).

    Returns:
        (for Newton, for the gradient direction, how they run).
    """
    if x_t.device.type != "cuda":
        return denoiser, denoiser, "eager (no CUDA)"

    def forward(x: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return denoiser.model_fn(x, tt)

    plain = GraphedCall(forward, x_t, t)
    with_grad = torch.cuda.make_graphed_callables(
        denoiser.model_fn, (x_t.detach().clone().requires_grad_(True), t)
    )
    newton_d = Denoiser(lambda x, tt: plain(x, tt).clone(), denoiser.scheduler,
                        denoiser.prediction_type)  # fmt: skip
    gradient_d = Denoiser(with_grad, denoiser.scheduler, denoiser.prediction_type)
    return newton_d, gradient_d, "CUDA graph of the network (fwd; fwd+bwd)"
