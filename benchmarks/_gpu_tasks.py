"""The GPU suite's end-to-end rows that run a task on a built model: decomposition, the
engine's decode batch, ``batch_images`` (``gpu_suite.py`` plans them; ``suite`` is its
``Suite``)."""

from __future__ import annotations

import _gpu_calls as calls
import _gpu_report as report
import torch
from _gpu_timing import time_calls, time_once
from batch_images import composites
from inpaint_speed import _inputs

from layerdecomp.models.base import DECODE_PIXELS
from layerdecomp.models.compiled import compile_backend


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


__all__ = ["batch_images", "decoding", "decomposition"]
