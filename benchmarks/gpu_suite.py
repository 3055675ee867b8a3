"""Every GPU figure of ``benchmarks/RESULTS.md`` in one process, printed as rows ready to paste.

Random-weight models with the real architectures, built on the device (no network):

1. Newton vs gradient, one iteration, SD 1.5 512², batch 1/4/16, the model's own attention:
   eager, graphed (the network in a CUDA graph: fwd for Newton, fwd+bwd for the gradient) and
   compiled (``torch.compile`` ``reduce-overhead``: inductor kernels + CUDA graphs). CUDA-event
   medians of ``--repeats`` interleaved calls after warm-up; peak working memory.
2. Inpainting SD 1.5 512², 20 steps × K = 5, end to end, against the floor NFE × one forward
   at the same batch (eager, and graphed: no host overhead).
3. Decomposition SD 1.5 512² (eager and compiled) and SDXL 1024² (default parameters); the
   engine's decode batch (30 latents) in one VAE call and in slices (``_gpu_tasks.py``).
4. One Newton / gradient iteration of the SD3-medium transformer at 1024².
5. ``batch_images`` for mini (images per second at B images per call).
6. The memory budget (#39; last, ``--only "budget,offload"``): decompositions of SD 1.5 512²
   and SDXL 1024² without a budget and under ``set_memory_budget`` (6 and 3 GiB; 12 and 8.5
   GiB; one the plan refuses runs at the smallest it names): the network's and decoder's
   largest batches, the time ratio, the masks' difference and the peak against the budget; and
   SD 1.5 through ``from_pipe(pipe)`` with ``enable_model_cpu_offload()`` and
   ``enable_sequential_cpu_offload()`` (``_gpu_tasks.py``).

Rows run most important first; ``--budget S`` skips rows that would not fit and stops cleanly
at S seconds after the start of ``main`` (imports take 10–20 s more), printing what it has.
``--dry-run`` runs the same code on the CPU with tiny configs and fewer repeats (a test:
tests/benchmarks/test_gpu_suite.py).

    python benchmarks/gpu_suite.py --budget 200     # on a GPU (benchmarks/gpu_suite.sh)
    python benchmarks/gpu_suite.py --dry-run        # CPU, under a minute
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _gpu_calls as calls  # noqa: E402
import _gpu_report as report  # noqa: E402
from _common import quiet_libraries  # noqa: E402
from _gpu_models import BUILDERS  # noqa: E402
from _gpu_tasks import batch_images, budgeted, decoding, decomposition, offloaded  # noqa: E402
from _gpu_timing import count_syncs, graph, graphed_denoisers, time_calls, time_once  # noqa: E402
from _memory import cpu_peak_supported, peak_bytes  # noqa: E402
from inpaint_speed import _inputs  # noqa: E402

from layerdecomp.models.base import attention_processors  # noqa: E402
from layerdecomp.models.compiled import GraphedCall, compile_backend, warm_up  # noqa: E402


class Budget(BaseException):
    """The time budget ran out (a BaseException: library code that catches Exception, such as
    dynamo's fallbacks, must not swallow it)."""


def _out_of_time(*_) -> None:
    raise Budget


@dataclass
class Scale:
    """What the GPU run and the dry run differ in (only sizes and counts)."""

    tiny: bool
    repeats: int
    warmup: int
    batches: tuple[int, ...]
    steps: int
    iterations: int
    decompose_updates: int | None
    images: int
    image_batches: tuple[int, ...]
    compiler: str


FULL = Scale(False, 20, 3, (1, 4, 16), 20, 5, None, 16, (1, 4, 16), "inductor")
QUICK = Scale(False, 20, 3, (1, 4, 16), 20, 5, None, 8, (1, 8), "inductor")
DRY = Scale(True, 3, 1, (1, 2), 2, 2, 1, 2, (1, 2), "eager")


@dataclass
class Suite:
    device: torch.device
    dtype: torch.dtype
    scale: Scale
    models: dict = field(default_factory=dict)
    iteration_rows: list[str] = field(default_factory=list)
    run_rows: list[str] = field(default_factory=list)
    medians: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    compiled_batches: tuple[int, ...] = (1,)

    def model(self, name: str):
        if name not in self.models:
            for other in list(self.models):  # one big model at a time
                del self.models[other]
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            seconds, built = time_once(
                lambda: BUILDERS[name](self.device, self.dtype, self.scale.tiny), self.device
            )
            attention = attention_processors(getattr(built, "pipeline", None))
            print(f"# built {name} in {seconds:.1f} s; attention {attention}", flush=True)
            self.models[name] = built
        return self.models[name]

    def size(self, name: str) -> int:
        """The model's native image side in pixels."""
        model = self.model(name)
        if name == "mini":
            return 64
        return getattr(model, "size", None) or 8 * model.unet.config.sample_size

    def label(self, name: str) -> str:
        return f"{name} {self.size(name)}²"

    def memory(self, fn) -> float | None:
        if self.device.type == "cpu" and not cpu_peak_supported():
            return None
        return peak_bytes(fn, self.device) / 2**20

    def add(self, rows: list[str], row: str) -> None:
        rows.append(row)
        print(row, flush=True)


def iterations(suite: Suite, name: str, regime: str, batches: tuple[int, ...] | None = None):
    """Newton vs gradient per iteration for ``batches`` in one regime."""
    model = suite.model(name)
    if regime == "compiled":
        compile_backend(model, "reduce-overhead", compiler=suite.scale.compiler)
    try:
        for batch in batches or suite.scale.batches:
            _iteration(suite, name, model, regime, batch)
    finally:
        if regime == "compiled":
            compile_backend(model, "none")


def _iteration(suite: Suite, name: str, model, regime: str, batch: int) -> None:
    gen = torch.Generator(suite.device).manual_seed(batch)
    shape = model.latent_shape(batch, suite.size(name), suite.size(name))
    x_t = torch.randn(shape, generator=gen, device=suite.device)
    e = torch.randn(shape, generator=gen, device=suite.device)
    t = 501  # a number, as the sampler passes it (a tensor is read back at every call)
    runs, warm = _runs(suite, regime, model.denoiser(""), x_t, t, e)
    times = time_calls(runs, suite.device, suite.scale.repeats, suite.scale.warmup)
    graphed = regime.startswith("graphed")
    memory = {k: None if graphed else suite.memory(fn) for k, fn in runs.items()}
    suite.medians[(name, regime, batch)] = times["newton"].median
    mem_ratio = "—"
    if memory["newton"] and memory["gradient"] is not None:
        mem_ratio = f"{memory['gradient'] / memory['newton']:.1f}"
    ratio = times["gradient"].median / times["newton"].median
    cells = (suite.label(name), batch, regime, *map(report.ms, times.values()), f"{ratio:.2f}",
             *map(report.mib, memory.values()), mem_ratio, f"{warm:.1f}", "(scaling)")  # fmt: skip
    suite.add(suite.iteration_rows, report.row(cells))


def _runs(suite: Suite, regime: str, base, x_t, t, e) -> tuple[dict, float]:
    """The two timed calls of a regime, and their warm-up seconds (capture, compilation)."""
    names = ("newton", "gradient")
    if regime == "graphed iteration":  # the whole direction in one CUDA graph, if it can be
        for name in names:
            call = functools.partial(calls.direction, name, base, x_t, t, e, True)
            syncs = count_syncs(call, suite.device)
            if syncs:  # capturing would fail: say why instead
                raise RuntimeError(f"{name}: {syncs} host syncs per call, cannot be captured")
        warm, graphs = time_once(
            lambda: [
                graph(lambda x, ee, n=n: calls.direction(n, base, x, t, ee, True), x_t, e)
                for n in names
            ],
            suite.device,
        )
        return {n: lambda g=g: g(x_t, e) for n, g in zip(names, graphs, strict=True)}, warm
    denoisers, warm = {n: base for n in names}, 0.0
    if regime == "graphed":
        warm, pair = time_once(lambda: graphed_denoisers(base, x_t, t), suite.device)
        denoisers = dict(zip(names, pair, strict=True))
    runs = {n: lambda n=n: calls.direction(n, denoisers[n], x_t, t, e) for n in names}
    if regime == "compiled":
        warm = sum(warm_up(fn, suite.device, calls=2) for fn in runs.values())
    return runs, warm


def host_syncs(suite: Suite) -> None:
    """Host synchronisations per call on the eager SD 1.5 path (a diagnostic line, untimed)."""
    backend = suite.model("sd15")
    shape = backend.latent_shape(1, suite.size("sd15"), suite.size("sd15"))
    x_t, e = torch.randn(shape, device=suite.device), torch.randn(shape, device=suite.device)
    denoiser = backend.denoiser("")
    image, mask = _inputs(suite.size("sd15"))

    def inpaint(iterations: int) -> int | None:
        config = calls.inpaint_config(2, iterations)
        return count_syncs(lambda: calls.inpaint_run(backend, image, mask, config), suite.device)

    counts = {
        "denoiser call": count_syncs(lambda: denoiser(x_t, 501), suite.device),
        "Newton direction": count_syncs(
            lambda: calls.direction("newton", denoiser, x_t, 501, e), suite.device
        ),
        "gradient direction": count_syncs(
            lambda: calls.direction("gradient", denoiser, x_t, 501, e), suite.device
        ),
    }
    few, more = inpaint(1), inpaint(3)
    if few is not None and more is not None:
        counts["inpaint, per extra Newton iteration"] = (more - few) / 4
    line = ", ".join(f"{k} {'n/a (CPU)' if v is None else v}" for k, v in counts.items())
    suite.notes.append(f"host syncs (sd15 eager, batch 1): {line}")
    print(f"# {suite.notes[-1]}", flush=True)


def _forward_ms(suite: Suite, denoiser, shape, graphed: bool) -> float:
    x_t = torch.randn(shape, device=suite.device)
    t = 501
    fn = denoiser.model_fn
    if graphed and suite.device.type == "cuda":
        with torch.no_grad():
            fn = GraphedCall(fn, x_t, torch.full((), t, device=suite.device))
    with torch.no_grad():
        timing = time_calls({"fwd": lambda: fn(x_t, t)}, suite.device, suite.scale.repeats)
    return timing["fwd"].median * 1e3


def inpainting(suite: Suite, regime: str):
    """Inpainting SD 1.5 end to end against the floor at the same batch."""
    backend = suite.model("sd15")
    label, size, scale = suite.label("sd15"), suite.size("sd15"), suite.scale
    image, mask = _inputs(size)
    config = calls.inpaint_config(scale.steps, scale.iterations)
    if regime == "compiled":
        compile_backend(backend, "reduce-overhead", compiler=scale.compiler)
    try:
        warm, _ = time_once(
            lambda: calls.inpaint_run(backend, image, mask, calls.inpaint_config(2, 1)),
            suite.device,
        )
        report.reset_peak(suite.device)
        seconds, nfe = time_once(lambda: calls.inpaint_run(backend, image, mask, config),
                                 suite.device)  # fmt: skip
        peak = report.peak_gib(suite.device)
        denoiser = calls.inpaint_denoiser(backend, config)
        shape = backend.latent_shape(1, size, size)
        floors = {regime: _forward_ms(suite, denoiser, shape, graphed=False)}
        if regime == "eager":  # the compiled forward is graphed already: no capture inside it
            floors["graphed"] = _forward_ms(suite, denoiser, shape, graphed=True)
    finally:
        if regime == "compiled":
            compile_backend(backend, "none")
    best = min(floors.values())
    floor_text = ", ".join(f"{k} {nfe * v / 1e3:.2f} ({v:.1f})" for k, v in floors.items())
    run = f"inpaint {scale.steps}×{scale.iterations}"
    cells = (run, label, regime, f"{seconds:.2f}", nfe, f"{seconds / nfe * 1e3:.1f}", floor_text,
             f"{seconds / (nfe * best / 1e3):.2f}", peak, f"{warm:.1f}")  # fmt: skip
    suite.add(suite.run_rows, report.row(cells))


def plan(suite: Suite, quick: bool) -> list[tuple[str, float, object]]:
    """(row, estimated seconds on an H100/H200, call), most important first."""
    it = functools.partial(iterations, suite)
    rows = [
        ("iteration sd15 eager", 25, lambda: it("sd15", "eager")),
        ("host syncs sd15", 10, lambda: host_syncs(suite)),
        ("iteration sd15 graphed", 25, lambda: it("sd15", "graphed")),
        ("inpaint sd15 eager", 20, lambda: inpainting(suite, "eager")),
        ("iteration sd15 graphed iteration", 20, lambda: it("sd15", "graphed iteration")),
        ("decompose sd15", 35, lambda: decomposition(suite, "sd15")),
        ("decode sd15", 15, lambda: decoding(suite, "sd15")),
        ("iteration sd3 eager", 20, lambda: it("sd3", "eager", (1,))),
        ("iteration sd3 graphed", 15, lambda: it("sd3", "graphed", (1,))),
        ("decompose sdxl", 70, lambda: decomposition(suite, "sdxl")),
        ("batch_images mini", 30, lambda: batch_images(suite)),
        ("inpaint sd15 compiled", 60, lambda: inpainting(suite, "compiled")),
        ("decompose sd15 compiled", 200, lambda: decomposition(suite, "sd15", "compiled")),
        ("iteration sd15 compiled", 150, lambda: it("sd15", "compiled", suite.compiled_batches)),
    ]
    if not quick:
        rows.append(("iteration sd3 compiled", 150, lambda: it("sd3", "compiled", (1,))))
    return rows + [  # the memory budget and offloaded pipelines (#39)
        ("decompose sd15 budget", 90, lambda: budgeted(suite, "sd15")),
        ("decompose sd15 offload", 70, lambda: offloaded(suite, "sd15")),
        ("decompose sdxl budget", 130, lambda: budgeted(suite, "sdxl")),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0, help="seconds (0: no limit)")
    parser.add_argument("--quick", action="store_true", help="leave out the long compiled rows")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny configs, float32")
    parser.add_argument("--only", default="", help="comma-separated row name fragments to run")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument(
        "--compiled-batches", default="1", help="batches of the compiled SD 1.5 rows (1,4,16)"
    )
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    start = time.perf_counter()
    quiet_libraries()
    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else None
    setattr(torch._dynamo.config, limit or "cache_size_limit", 64)  # per shape and grad mode
    if args.dry_run:
        suite = Suite(torch.device("cpu"), torch.float32, DRY)
    elif not torch.cuda.is_available():
        parser.error("no CUDA device: run with --dry-run for the CPU check")
    else:
        scale = QUICK if args.quick else FULL
        suite = Suite(torch.device("cuda"), getattr(torch, args.dtype), scale)
    suite.compiled_batches = tuple(int(b) for b in args.compiled_batches.split(","))
    for line in report.header(suite.device, suite.dtype, argv):
        print(line, flush=True)
    if args.budget:
        signal.signal(signal.SIGALRM, _out_of_time)
        signal.setitimer(signal.ITIMER_REAL, args.budget)
    skipped, failed = [], []
    rows = plan(suite, args.quick)
    if args.only:
        wanted = args.only.split(",")
        rows = [row for row in rows if any(w in row[0] for w in wanted)]
    for title, estimate, run in rows:
        left = args.budget - (time.perf_counter() - start) if args.budget else float("inf")
        if not args.dry_run and estimate > left:
            skipped.append(title)
            continue
        print(f"# {title} …", flush=True)
        try:
            run()
        except Budget:
            skipped.append(f"{title} (stopped at the budget)")
            break
        except Exception as exc:  # one broken row must not cost the others
            if args.dry_run:
                raise
            first_line = (str(exc).splitlines() or [""])[0][:200]
            failed.append(f"{title}: {type(exc).__name__}: {first_line}")
            print(f"# FAILED {failed[-1]}", flush=True)
            del exc
            gc.collect()  # an out-of-memory row must not take the next rows' memory
            if suite.device.type == "cuda":
                torch.cuda.empty_cache()
    signal.setitimer(signal.ITIMER_REAL, 0)
    report.print_tables(suite, skipped, failed, time.perf_counter() - start)
    sys.stdout.flush()
    if not args.dry_run:
        os._exit(1 if failed else 0)  # compile workers and CUDA teardown must not hang the run
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
