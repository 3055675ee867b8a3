"""A memory budget for a backend's batched calls: how many rows of a batch one call may take.

The layer engine sends all L·R·S samples through the denoising network at once and decodes them
together; a task's batch can need far more memory than a GPU has. :class:`MemoryPlan` splits such
a call into chunks of rows that fit: the network's working memory grows by a fixed amount per
row of the batch, measured once per call, latent shape and grad mode (:func:`measure_rows`), and
the largest chunk is the one whose peak fits the headroom (the budget minus what is in use).

The measurement counts the bytes of the tensors each operation allocates while they are alive
(:func:`counted_peak`, a dispatch mode; the same count on every device, it neither resets nor
reads the CUDA allocator's statistics): at one row and at two, the slope is the cost of a row
and the rest the cost of the call. The allocator's rounding, cuBLAS workspaces and fragmentation
are not tensors: a plan uses :data:`MARGIN` of the headroom.

Each row of a batch is an independent problem, so chunked calls give the unchunked call's rows
(the same kernels on fewer rows); under autograd each chunk is checkpointed
(:func:`torch.utils.checkpoint.checkpoint`: its activations are recomputed during the backward
pass) so that the graph of one chunk at a time is alive.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..errors import ModelSpecError

GIB = 1 << 30
"""Bytes in a GiB, the unit of ``max_memory``."""

MARGIN = 0.9
"""The share of the headroom a plan fills with counted tensors; the rest is for what the count
does not see (allocator rounding and fragmentation, library workspaces)."""


class _Counter(TorchDispatchMode):
    """Counts the bytes of the storages that operations allocate while they are alive, and the
    peak of that count. Outputs that alias an input (views, in-place results) are not new."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._sizes: dict[int, int] = {}

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        if any(r.alias_info is not None for r in returns):
            return out
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = id(storage)
            if key in self._sizes:
                continue
            self._sizes[key] = storage.nbytes()
            self.live += self._sizes[key]
            weakref.finalize(storage, self._free, key)
            self.peak = max(self.peak, self.live)
        return out


def counted_peak(fn: Callable[[], Any], *, fake: bool = False) -> int:
    """The peak bytes of the tensors ``fn`` allocates while it runs (those alive before it are not
    counted; its result is dropped).

    Args:
        fn: the call to measure.
        fake: run it under :class:`~torch._subclasses.fake_tensor.FakeTensorMode`: shapes only, no
            computation (for networks built on the ``meta`` device; not for offloaded modules,
            whose hooks would store fake weights).
    """
    counter = _Counter()
    if fake:
        from torch._subclasses.fake_tensor import FakeTensorMode

        with FakeTensorMode(allow_non_fake_inputs=True), counter:
            fn()
    else:
        with counter:
            fn()
    return counter.peak


@dataclass(frozen=True)
class RowCost:
    """The working memory of a batched call: ``fixed + rows × per_row`` bytes."""

    fixed: int
    per_row: int

    def peak(self, rows: int) -> int:
        """The call's working memory for ``rows`` rows, in bytes."""
        return self.fixed + rows * self.per_row

    def rows_within(self, headroom: float) -> int:
        """The most rows whose peak fits ``headroom`` bytes (0: not even one)."""
        return max(0, int((headroom - self.fixed) // self.per_row))


def measure_rows(
    call: Callable[[int, int, torch.Tensor], torch.Tensor],
    sample: torch.Tensor,
    *,
    grad: bool = False,
    fake: bool = False,
) -> RowCost:
    """The :class:`RowCost` of ``call(0, rows, sample[:rows])`` from its counted peaks at one row
    and two (the signature of :func:`run_chunks`' calls).

    Args:
        call: the batched call on the first rows of ``sample``.
        sample: a batch of at least two rows (their values are used as they are).
        grad: measure a forward with its graph and the backward through it (one cotangent of
            ones), as a checkpointed chunk runs under autograd.
        fake: see :func:`counted_peak`.
    """

    one, two = (_peak(call, sample, rows, grad=grad, fake=fake) for rows in (1, 2))
    per_row = max(1, two - one)
    return RowCost(fixed=max(0, one - per_row), per_row=per_row)


def _peak(call, sample: torch.Tensor, rows: int, *, grad: bool, fake: bool = False) -> int:
    """The counted peak of ``call(0, rows, sample[:rows])`` (with ``grad``: and its backward)."""

    def go() -> None:
        x = sample[:rows].detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            out = call(0, rows, x)
            if grad:
                torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out))

    return counted_peak(go, fake=fake)


def module_bytes(modules: Any, device: torch.device) -> int:
    """Bytes of the parameters and buffers of ``modules`` (a pipeline's components) on
    ``device``'s type, each storage once."""
    seen: dict[int, int] = {}
    for module in modules:
        if not isinstance(module, torch.nn.Module):
            continue
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.device.type == device.type:
                storage = tensor.untyped_storage()
                seen[storage.data_ptr() or id(storage)] = storage.nbytes()
    return sum(seen.values())


class MemoryPlan:
    """The chunk sizes of a backend's calls under a memory budget.

    Args:
        device: where the calls run.
        max_memory: the budget in GiB; ``None``: the device's free memory on a GPU (what
            ``torch.cuda.mem_get_info`` reports free, plus what torch's allocator holds unused),
            no limit elsewhere.
        resident: bytes in use before any call, where the device cannot say (the weights; on
            CUDA ``torch.cuda.memory_allocated`` counts everything torch holds).
        costs: the row costs measured so far (they do not depend on the budget).
    """

    def __init__(
        self,
        device: torch.device,
        max_memory: float | None,
        resident: Callable[[], int],
        costs: dict[tuple, RowCost] | None = None,
    ) -> None:
        if max_memory is not None and not max_memory > 0:
            raise ModelSpecError(f"max_memory: expected a positive number of GiB, got {max_memory}")
        self.device, self.max_memory, self._resident = device, max_memory, resident
        self.costs: dict[tuple, RowCost] = {} if costs is None else costs
        self._rows: dict[tuple, int] = {}

    @property
    def limited(self) -> bool:
        """Whether calls are planned at all (a budget was given, or the device is a GPU)."""
        return self.max_memory is not None or self.device.type == "cuda"

    def headroom(self) -> tuple[int, int]:
        """(bytes in use now, bytes the budget leaves above them)."""
        if self.device.type == "cuda":
            in_use = torch.cuda.memory_allocated(self.device)
            if self.max_memory is None:
                free, _ = torch.cuda.mem_get_info(self.device)
                held = torch.cuda.memory_reserved(self.device) - in_use
                return in_use, free + held
        else:
            in_use = self._resident()
        return in_use, int(self.max_memory * GIB) - in_use

    def rows(
        self, what: str, sample: torch.Tensor, call: Callable[[int, int, torch.Tensor], Any]
    ) -> int:
        """The most rows of ``sample``'s batch one ``what`` call takes (the whole batch when
        unlimited): ``call`` (as :func:`run_chunks` makes it) is measured by
        :func:`measure_rows` once per call, row shape and grad mode; the answer is kept per batch
        size (a compiled network sees the same shapes every time). A batch of one row has nothing
        to split but is checked all the same (by the row cost measured on a larger batch, else by
        one counted call).

        Raises:
            ModelSpecError: the budget does not fit one row; the message names the smallest
                ``max_memory`` that does.
        """
        batch = sample.shape[0]
        if not self.limited or batch < 1:
            return batch
        grad = torch.is_grad_enabled() and sample.requires_grad
        shape = (what, tuple(sample.shape[1:]), sample.dtype, grad)
        if (shape, batch) in self._rows:
            return self._rows[(shape, batch)]
        if shape not in self.costs and batch > 1:
            self.costs[shape] = measure_rows(call, sample, grad=grad)
        cost = self.costs.get(shape) or RowCost(0, max(1, _peak(call, sample, 1, grad=grad)))
        in_use, headroom = self.headroom()
        rows = cost.rows_within(headroom * MARGIN)
        if rows < 1:
            need = (in_use + cost.peak(1) / MARGIN) / GIB
            budget = "the free memory" if self.max_memory is None else f"{self.max_memory:.3g} GiB"
            raise ModelSpecError(
                f"max_memory: {budget} does not fit one sample of the {what} call at "
                f"{'×'.join(map(str, sample.shape[1:]))} ({in_use / GIB:.3g} GiB in use, "
                f"{cost.peak(1) / GIB:.3g} GiB for one sample); the smallest that fits is "
                f"{_round_up(need):.3g} GiB"
            )
        self._rows[(shape, batch)] = min(rows, batch)
        return self._rows[(shape, batch)]


def _round_up(gib: float) -> float:
    """``gib`` rounded up to three significant digits (so that the number printed fits)."""
    scale = 10 ** (math.floor(math.log10(gib)) - 2) if gib > 0 else 1
    return math.ceil(gib / scale) * scale


def chunks(batch: int, rows: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``batch`` rows in chunks of ``rows``, the last one the
    remainder (as ``Tensor.split``: at most two shapes for a compiled network)."""
    return [(start, min(start + rows, batch)) for start in range(0, batch, rows)]


def run_chunks(
    call: Callable[[int, int, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    rows: int,
    *,
    checkpoint: bool = True,
) -> torch.Tensor:
    """``call(start, stop, x[start:stop])`` over the chunks of ``x``'s batch, joined in order;
    one call when ``rows`` covers the batch. Under autograd (``x`` requiring grad) each chunk is
    checkpointed unless ``checkpoint`` is false: its activations are recomputed in the backward
    pass, one chunk at a time."""
    if rows >= x.shape[0]:
        return call(0, x.shape[0], x)
    graph = checkpoint and torch.is_grad_enabled() and x.requires_grad
    parts = []
    for start, stop in chunks(x.shape[0], rows):
        part = x[start:stop]
        if graph:
            from torch.utils.checkpoint import checkpoint

            parts.append(checkpoint(call, start, stop, part, use_reentrant=False))
        else:
            parts.append(call(start, stop, part))
    return torch.cat(parts)


def condition_rows(cond: Any, batch: int, start: int, stop: int) -> Any:
    """The conditioning of rows ``start … stop − 1`` of a ``batch``: each tensor field of the
    ``cond`` dataclass holds one row per prompt, and with P prompts row i takes prompt
    ``i // (batch / P)`` (the backends' rule). ``cond`` itself when it has no per-prompt rows
    (``None``, one prompt). Returns ``None`` for a batch that is not a multiple of the prompts."""
    import dataclasses

    if cond is None or not dataclasses.is_dataclass(cond):
        return cond
    tensors = {
        f.name: getattr(cond, f.name)
        for f in dataclasses.fields(cond)
        if isinstance(getattr(cond, f.name), torch.Tensor)
    }
    prompts = {t.shape[0] for t in tensors.values()}
    if prompts == {1} or not tensors:
        return cond
    if len(prompts) != 1 or batch % (count := prompts.pop()):
        return None
    index = torch.arange(start, stop, device=next(iter(tensors.values())).device)
    index = index // (batch // count)
    return dataclasses.replace(cond, **{k: t.index_select(0, index) for k, t in tensors.items()})


__all__ = [
    "GIB",
    "MARGIN",
    "MemoryPlan",
    "RowCost",
    "chunks",
    "condition_rows",
    "counted_peak",
    "measure_rows",
    "module_bytes",
    "run_chunks",
]
