"""Compiled and captured denoisers: ``torch.compile`` of a backend's network, CUDA graphs.

:func:`compile_backend` compiles the ONE network every backend calls per denoiser evaluation
(``unet`` for SD 1.x/2.x/XL and pixel models, ``transformer`` for SD3 and Flux) in place, with
static shapes (``dynamic=False``): the backend keeps calling ``self.unet(...)`` and gets the
compiled forward, so every task, direction and sampler uses it without knowing. Modes:

- ``none``: eager (undoes an earlier compilation);
- ``default``: inductor kernels (fusions), host overhead mostly unchanged;
- ``reduce-overhead``: the same plus CUDA graphs on a GPU (torch's cudagraph trees): one launch
  per forward instead of hundreds, which is what a host-bound batch-1 iteration needs;
- ``max-autotune``: autotuned kernels and CUDA graphs (long warm-up).

Compilation happens at the first call for each shape and grad mode (Newton runs without a graph,
the gradient direction with one: two compilations), so the first calls are slow: time them with
:func:`warm_up` and report that cost apart from the run. A new shape (another batch or size)
recompiles; torch falls back to eager after ``torch._dynamo.config.cache_size_limit`` of them.

:class:`GraphedCall` captures a whole function of fixed-shape tensors (e.g. a Newton iteration:
two forwards and the update) in one ``torch.cuda.CUDAGraph`` and replays it; it needs a GPU and
a function without host reads (no ``.item()``, no Python branch on a tensor value).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Literal, get_args

import torch

from .base import device_timestep

CompileMode = Literal["none", "default", "reduce-overhead", "max-autotune"]
"""A ``torch.compile`` mode of the denoising network (``none``: eager): the one declaration."""

COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)
"""The accepted ``mode`` values of :func:`compile_backend`."""

GRAPH_MODES = ("reduce-overhead", "max-autotune")
"""The :data:`COMPILE_MODES` whose inductor kernels are replayed as CUDA graphs on a GPU."""

NETWORKS = ("unet", "transformer")
"""Attribute names of the network a backend calls once per denoiser evaluation."""


def denoising_networks(backend: Any) -> dict[str, torch.nn.Module]:
    """The networks of ``backend`` that run once per denoiser evaluation, by attribute name."""
    found = {
        name: getattr(backend, name)
        for name in NETWORKS
        if isinstance(getattr(backend, name, None), torch.nn.Module)
    }
    if not found:
        raise TypeError(f"{type(backend).__name__} has no network among {', '.join(NETWORKS)}")
    return found


def compile_function(
    fn: Callable, mode: str, compiler: str | Callable = "inductor"
) -> tuple[Callable, bool]:
    """``torch.compile(fn)`` in one of the :data:`COMPILE_MODES` but ``none``, with static
    shapes, and whether its calls replay CUDA graphs (on CUDA tensors). ``mode`` is inductor's
    option: another ``compiler`` (``"aot_eager"``: a cheap structural check) ignores it."""
    options = {"mode": mode} if mode != "default" and compiler == "inductor" else {}
    graphs = mode in GRAPH_MODES and compiler == "inductor"
    return torch.compile(fn, dynamic=False, backend=compiler, **options), graphs


class CompiledForward:
    """A module's ``forward`` compiled by ``torch.compile``, installed as the instance's forward.

    The timestep (second positional argument or ``timestep=``) is made a tensor on the sample's
    device (a number by ``torch.full``, which needs no host-to-device copy and so no sync): a
    Python number would be a constant to dynamo (one compilation per timestep) and a CPU tensor
    would keep CUDA graphs off. Under CUDA graphs (``reduce-overhead``,
    ``max-autotune`` on a GPU) each call starts a new cudagraph step and its outputs are cloned:
    the Newton direction holds the first forward's output while it runs the second.
    """

    def __init__(self, forward: Callable, mode: str, compiler: str | Callable = "inductor"):
        self.eager = forward
        self.mode = mode
        self.compiled, self.graphs = compile_function(forward, mode, compiler)
        functools.update_wrapper(self, forward)  # inspect.signature sees the real forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sample = args[0] if args else next(iter(kwargs.values()))
        if len(args) > 1:
            args = (args[0], device_timestep(args[1], sample), *args[2:])
        elif "timestep" in kwargs:
            kwargs["timestep"] = device_timestep(kwargs["timestep"], sample)
        if not (self.graphs and sample.is_cuda):
            return self.compiled(*args, **kwargs)
        torch.compiler.cudagraph_mark_step_begin()
        out = self.compiled(*args, **kwargs)
        return _clone(out)


def _clone(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.clone()
    if isinstance(out, tuple | list):
        return type(out)(_clone(item) for item in out)
    if hasattr(out, "to_tuple"):  # a diffusers BaseOutput
        return type(out)(*(_clone(item) for item in out.to_tuple()))
    return out


def compile_backend(
    backend: Any, mode: str = "default", *, compiler: str | Callable = "inductor"
) -> Any:
    """Compile ``backend``'s denoising network in place (``mode="none"``: back to eager).

    Args:
        backend: a loaded :class:`~layerdecomp.models.Backend` (or anything with ``unet`` or
            ``transformer``).
        mode: one of :data:`COMPILE_MODES`.
        compiler: ``torch.compile``'s backend: ``"inductor"`` (real kernels), or ``"eager"`` /
            ``"aot_eager"`` for a cheap structural check of the tracing.

    Returns:
        The same backend; ``compile_mode(backend)`` tells how it is compiled now.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode {mode!r} is not one of {', '.join(COMPILE_MODES)}")
    for net in denoising_networks(backend).values():
        if isinstance(net.__dict__.get("forward"), CompiledForward):
            del net.forward  # the class's eager forward again
        if mode != "none":
            net.forward = CompiledForward(net.forward, mode, compiler)
    return backend


def compile_mode(backend: Any) -> str:
    """How ``backend``'s network runs: ``"none"`` (eager) or the mode it was compiled with."""
    for net in denoising_networks(backend).values():
        forward = net.__dict__.get("forward")
        if isinstance(forward, CompiledForward):
            return forward.mode
    return "none"


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(fn: Callable[[], Any], device: torch.device | str, calls: int = 3) -> float:
    """Call ``fn`` ``calls`` times (compilation, autotuning, graph capture) and return the
    seconds it took, synchronised: the warm-up cost to report apart from the timed run."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return time.perf_counter() - start


class GraphedCall:
    """``fn(*tensors)`` captured once in a CUDA graph and replayed on new values of the inputs.

    The inputs are copied into static buffers (a Python number is written with ``fill_``, which
    needs no host-to-device copy); the returned object is the captured output itself (its tensors
    are overwritten by the next call: clone what you keep).

    Args:
        fn: a function of tensors with fixed shapes, without host reads or synchronisation.
        *example: CUDA tensors with the shapes, dtypes and devices of the later inputs (a 0-d
            one where numbers will be passed).
        warmup: eager calls on a side stream before capture (lazy initialisation, cuBLAS).
    """

    def __init__(self, fn: Callable[..., Any], *example: torch.Tensor, warmup: int = 2):
        if not example or not all(isinstance(x, torch.Tensor) and x.is_cuda for x in example):
            raise ValueError("GraphedCall needs CUDA tensors as example inputs")
        self.inputs = [x.detach().clone() for x in example]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                fn(*self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = fn(*self.inputs)

    def __call__(self, *args: torch.Tensor | float) -> Any:
        for static, value in zip(self.inputs, args, strict=True):
            if isinstance(value, torch.Tensor):
                static.copy_(value)
            else:
                static.fill_(value)
        self.graph.replay()
        return self.output


__all__ = [
    "COMPILE_MODES",
    "GRAPH_MODES",
    "CompiledForward",
    "GraphedCall",
    "compile_backend",
    "compile_function",
    "compile_mode",
    "denoising_networks",
    "device_timestep",
    "synchronize",
    "warm_up",
]
