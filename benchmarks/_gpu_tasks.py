"""The GPU suite's end-to-end rows that run a task on a built model: decomposition (also under
a memory budget and through an offloaded pipeline, #39), the engine's decode batch,
``batch_images`` (``gpu_suite.py`` plans them; ``suite`` is its ``Suite``)."""

from __future__ import annotations

import contextlib
import gc
import re
from dataclasses import dataclass

import _gpu_calls as calls
import _gpu_report as report
import torch
from _gpu_timing import time_calls, time_once
from batch_images import composites
from budget_time import budget_for
from inpaint_speed import _inputs

from layerdecomp.errors import ModelSpecError
from layerdecomp.models import from_pipe
from layerdecomp.models.base import DECODE_PIXELS
from layerdecomp.models.compiled import compile_backend
from layerdecomp.models.memory import GIB
from layerdecomp.tasks.decompose import decompose_image

BUDGETS = {"sd15": (6.0, 3.0), "sdxl": (12.0, 8.5)}
"""GiB of the budget rows: a roomy one, and one near ``memory_plan.py``'s smallest (SD 1.5 2.94,
SDXL 8.43 GiB; it leaves out the text encoders, which stay on the GPU here). A budget the plan
refuses is run again at the smallest it names."""
UPDATES = {"sd15": None, "sdxl": 2, "offload": 2}
"""Mask updates of those rows on a GPU (``None``: the default 12). Every update sends the same
batches, so the peaks are the default run's; SDXL's default run takes 82 s, offloaded ones more."""
DRY_SHARES = (2, 5)
"""Dry run: the budgets let the network take 1/2 and 1/5 of its batch (the plan's own costs)."""
PROMPTS = ("a cat", "a lawn")


def decomposition(suite, name: str, regime: str = "eager"):
    """One default two-layer decomposition of a random image at the model's size (compiled:
    the network in ``reduce-overhead`` mode; the warm-up compiles its three batch shapes)."""
    backend = suite.model(name)
    label = suite.label(name)
    image, _ = _inputs(suite.size(name))
    prompts = ("a cat", "a lawn")
    if regime == "compiled":
        compile_backend(backend, "reduce-overhead", compiler=suite.scale.compiler)
    try:
        warm, _ = time_once(lambda: calls.decompose_run(backend, image, prompts, 1), suite.device)
        report.reset_peak(suite.device)
        seconds, nfe = time_once(
            lambda: calls.decompose_run(backend, image, prompts, suite.scale.decompose_updates),
            suite.device,
        )
    finally:
        if regime == "compiled":
            compile_backend(backend, "none")
    cells = ("decompose", label, regime, f"{seconds:.2f}", nfe, f"{seconds / nfe * 1e3:.1f}",
             "—", "—", report.peak_gib(suite.device), f"{warm:.1f}")  # fmt: skip
    suite.add(suite.run_rows, report.row(cells))


def batch_images(suite):
    """Inpainting throughput of mini with B images per call."""
    backend = suite.model("mini")
    scale = suite.scale
    pairs = composites(scale.images, 64)
    config = calls.inpaint_config(scale.steps, scale.iterations)
    warm, _ = time_once(
        lambda: calls.inpaint_images(backend, pairs[:2], 2, calls.inpaint_config(1, 1)),
        suite.device,
    )
    first = None
    for batch in scale.image_batches:
        seconds = calls.inpaint_images(backend, pairs, batch, config)
        rate = len(pairs) / seconds
        first = first or rate
        run = f"batch_images B={batch} ({len(pairs)} images, {rate:.2f}/s, ×{rate / first:.2f})"
        cells = (run, "mini 64²", "eager", f"{seconds:.2f}", "—", "—", "—", "—", "—", f"{warm:.1f}")
        suite.add(suite.run_rows, report.row(cells))


def decoding(suite, name: str, batch: int = 30):
    """The engine's decode batch (L·R·K = 30 latents at the model's size) in one VAE call and
    in slices of ``DECODE_PIXELS`` (``LatentBackend.decode``): seconds (CUDA events, median of
    3) and the peak."""
    backend = suite.model(name)
    label, size = suite.label(name), suite.size(name)
    latent = torch.randn(backend.latent_shape(batch, size, size), device=suite.device)
    try:
        for budget in (0, DECODE_PIXELS):
            backend.decode_pixels = budget
            with torch.no_grad():
                warm, _ = time_once(lambda: backend.decode(latent[:2]), suite.device)
                report.reset_peak(suite.device)
                timing = time_calls({"decode": lambda: backend.decode(latent)}, suite.device, 3, 1)
            run = f"decode {batch}, " + (f"slices of {budget:,} px" if budget else "one call")
            cells = (run, label, "eager", f"{timing['decode'].median:.3f}", "—", "—", "—", "—",
                     report.peak_gib(suite.device), f"{warm:.1f}")  # fmt: skip
            suite.add(suite.run_rows, report.row(cells))
    finally:
        backend.decode_pixels = DECODE_PIXELS


@dataclass
class Run:
    """One timed decomposition: its seconds, result, the largest batches the network and the
    VAE decoder took (forward pre-hooks), and on a GPU the allocated GiB before it and at peak."""

    seconds: float
    layers: object
    network: int
    decode: int
    before: float | None
    peak: float | None


@contextlib.contextmanager
def _rows_seen(backend):
    """``{"network": [...], "decode": [...]}``: the batch of every UNet and VAE decoder call."""
    seen = {"network": [], "decode": []}
    modules = {"network": backend.pipeline.unet, "decode": backend.pipeline.vae.decoder}
    handles = [
        module.register_forward_pre_hook(lambda _, args, k=k: seen[k].append(len(args[0])))
        for k, module in modules.items()
    ]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _decompose(backend, image, updates: int | None):
    overrides = {} if updates is None else {"updates": updates}
    return decompose_image(backend, image, *PROMPTS, disable=True, **overrides)


def _run(suite, backend, image, updates: int | None) -> Run:
    cuda = suite.device.type == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    report.reset_peak(suite.device)
    before = torch.cuda.memory_allocated(suite.device) / GIB if cuda else None
    with _rows_seen(backend) as seen:
        seconds, layers = time_once(lambda: _decompose(backend, image, updates), suite.device)
    peak = torch.cuda.max_memory_allocated(suite.device) / GIB if cuda else None
    return Run(seconds, layers, max(seen["network"]), max(seen["decode"]), before, peak)


def _difference(run: Run, reference: Run) -> float:
    return float((run.layers.masks - reference.layers.masks).abs().max())


def _add(suite, label: str, what: str, run: Run, reference: Run, warm: float | None) -> None:
    """The row (the run's network and decode batches against the reference's, its time ratio,
    the masks' largest difference) and a note with the peak against the budget."""
    ratio, diff = run.seconds / reference.seconds, _difference(run, reference)
    text = (f"decompose, {what}: network ≤ {run.network}/{reference.network} rows, decode ≤ "
            f"{run.decode}/{reference.decode}, ×{ratio:.2f} time, masks Δ {diff:.1e}")  # fmt: skip
    nfe = run.layers.nfe
    cells = (text, label, "eager", f"{run.seconds:.2f}", nfe,
             f"{run.seconds / nfe * 1e3:.1f}", "—", "—", report.peak_gib(suite.device),
             "—" if warm is None else f"{warm:.1f}")  # fmt: skip
    suite.add(suite.run_rows, report.row(cells))
    if run.peak is not None:
        note = f"{label} {what}: peak {run.peak:.2f} GiB allocated "
        note += f"({run.peak - run.before:.2f} above the {run.before:.2f} before the call)"
        budget = re.match(r"budget ([\d.]+) GiB", what)
        if budget:
            within = run.peak <= float(budget[1])
            note += f", {'within' if within else 'OVER'} the budget"
        suite.notes.append(note)
        print(f"# {note}", flush=True)


def _budgets(suite, backend, name: str, reference: Run) -> list[float]:
    if not suite.scale.tiny:
        return list(BUDGETS[name])
    backend.set_memory_budget(1000.0)  # the costs measured in the warm-up are kept
    half = max(budget_for(backend, reference.network // 2), budget_for(backend, 1, "decode"))
    return [half, budget_for(backend, 0)]  # the second: less than one row, to be refused


def _budgeted_run(suite, backend, image, updates, gib: float) -> tuple[Run, str]:
    """The run under ``gib``; a budget the plan refuses is raised to the smallest that it names
    (the network's and then the decoder's, at most three times)."""
    what, asked = f"budget {gib:.3g} GiB", gib
    for _ in range(3):
        backend.set_memory_budget(gib)
        try:
            return _run(suite, backend, image, updates), what
        except ModelSpecError as error:
            smallest = re.search(r"smallest that fits is ([\d.]+) GiB", str(error))
            if smallest is None:
                raise
            print(f"# {gib:.3g} GiB refused: {error}", flush=True)
            gib = float(smallest[1])
            what = f"budget {gib:.3g} GiB ({asked:.3g} refused)"
    raise RuntimeError(f"{what}: refused three times")


def budgeted(suite, name: str):
    """A decomposition without a budget, then under each of :data:`BUDGETS` (the dry run: budgets
    from the plan's measured costs, one that halves the network's batch and one under a row,
    refused; it checks that the batches were split and that the masks agree)."""
    backend, label = suite.model(name), suite.label(name)
    image, _ = _inputs(suite.size(name))
    tiny = suite.scale.tiny
    updates = suite.scale.decompose_updates if tiny else UPDATES[name]
    # the warm-up measures the row costs (planned: a GPU's free memory, 1000 GiB on the CPU)
    backend.set_memory_budget(1000.0 if tiny else None)
    try:
        warm, _ = time_once(lambda: _decompose(backend, image, 1), suite.device)
        backend.set_memory_budget(None)
        plain = _run(suite, backend, image, updates)
        _add(suite, label, f"no budget, updates={updates or 12}", plain, plain, warm)
        for gib in _budgets(suite, backend, name, plain):
            run, what = _budgeted_run(suite, backend, image, updates, gib)
            _add(suite, label, what, run, plain, None)
            if tiny:
                assert run.network < plain.network and run.decode < plain.decode, what
                assert _difference(run, plain) < 1e-4, _difference(run, plain)
    finally:
        backend.set_memory_budget(None)


def offloaded(suite, name: str = "sd15"):
    """A decomposition through ``from_pipe(pipe)`` with ``enable_model_cpu_offload()`` and with
    ``enable_sequential_cpu_offload()`` on the suite's random-weight pipeline, against the plain
    pipeline's run. Sequential offload needs an accelerator: on the CPU its row says so. The
    offloaded pipelines are dropped afterwards (the next row builds the model again)."""
    backend, label = suite.model(name), suite.label(name)
    image, _ = _inputs(suite.size(name))
    updates = suite.scale.decompose_updates if suite.scale.tiny else UPDATES["offload"]
    warm, _ = time_once(lambda: _decompose(backend, image, 1), suite.device)
    plain = _run(suite, backend, image, updates)
    _add(suite, label, f"no offload, updates={updates or 12}", plain, plain, warm)
    for how in ("model", "sequential"):
        if suite.device.type != "cuda" and how == "sequential":
            cells = ("decompose, sequential offload: skipped on CPU: needs an accelerator",
                     label, "eager", *["—"] * 7)  # fmt: skip
            suite.add(suite.run_rows, report.row(cells))
            continue
        pipe = suite.model(name).pipeline  # model: the plain run's; sequential: built again
        suite.models.pop(name)  # hooked from here on: not for the next rows
        getattr(pipe, f"enable_{how}_cpu_offload")(device=suite.device)
        hooked = from_pipe(pipe)
        assert hooked.device.type == suite.device.type and hooked.describe()["offload"] is True
        run = _run(suite, hooked, image, updates)
        _add(suite, label, f"{how} offload, from_pipe", run, plain, None)
        if suite.scale.tiny:
            assert _difference(run, plain) < 1e-5, _difference(run, plain)
        pipe.remove_all_hooks()
        del pipe, hooked


__all__ = ["batch_images", "budgeted", "decoding", "decomposition", "offloaded"]
