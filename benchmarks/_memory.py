"""Peak-memory measurement shared by the benchmarks.

GPU: ``torch.cuda.max_memory_allocated`` after a reset. CPU: the process's peak resident set
(``VmHWM``), reset through ``/proc/self/clear_refs`` before the call (Linux); both are reported as
the peak above what was in use just before the call, i.e. the working memory of the call itself.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable

import torch


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_peak_supported() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_kib("VmHWM")
        return True
    except OSError:
        return False


def _release_freed_heap() -> None:
    """Return freed heap pages to the OS so that they cannot hide a call's allocations."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak memory above the pre-call level while running ``fn`` once."""
    gc.collect()
    _release_freed_heap()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        del result
        return torch.cuda.max_memory_allocated(device) - before
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    result = fn()
    peak = _status_kib("VmHWM")
    del result
    return (peak - before) * 1024


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated above the allocation before the call"
    return (
        "peak resident set (VmHWM, reset via /proc/self/clear_refs) above the RSS before the call"
    )
