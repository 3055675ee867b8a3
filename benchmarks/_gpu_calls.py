"""Every solver and task call ``gpu_suite.py`` makes, in one place (the adapter).

When a signature of ``solvers`` or ``layerdecomp.tasks`` changes, this module is the one to
update; ``tests/benchmarks/test_gpu_suite.py`` runs all of it on the CPU.

- per iteration: ``solvers.newton`` / ``solvers.gradient`` (one direction, fixed inputs);
- end to end: ``layerdecomp.tasks.inpaint.inpaint`` (and ``inpaint_batch`` through
  ``batch_images.run``), ``layerdecomp.tasks.decompose.decompose_image``.
"""

from __future__ import annotations

import solvers
from layerdecomp.options import configure
from layerdecomp.tasks.decompose import decompose_image
from layerdecomp.tasks.inpaint import InpaintConfig, inpaint


def direction(name: str, denoiser, x_t, t, e, deferred: bool = False):
    """One direction evaluation (``newton``: two forwards, no graph; ``gradient``: forward and
    backward), returning ``h``; ``deferred`` queues the NaN/Inf checks on a guard that is never
    read (as inside ``solvers.refine``), so that the call can be captured in a CUDA graph."""
    guard = solvers.FiniteGuard() if deferred else None
    return getattr(solvers, name)(denoiser, x_t, t, e, guard=guard).h


def inpaint_config(steps: int, iterations: int) -> InpaintConfig:
    """The inpainting parameters of the runs (§4.1: 20 steps × K = 5, no prompt, no guidance)."""
    return configure(InpaintConfig, None, {"steps": steps, "iters": iterations})


def inpaint_denoiser(backend, config: InpaintConfig):
    """The denoiser an inpainting run calls (its prompt and guidance bound): the floor's unit."""
    return backend.denoiser(config.prompt, config.negative_prompt, config.guidance)


def inpaint_run(backend, image, mask, config: InpaintConfig) -> int:
    """One inpainting run (seed 0); returns its NFE."""
    return inpaint(backend, image, mask, config=config, seed=0, disable_progress=True).nfe


def decompose_run(backend, image, prompts: tuple[str, str], updates: int | None) -> int:
    """One two-layer decomposition with the default parameters (at most ``updates`` mask
    updates for a warm-up or a dry run); returns its NFE."""
    overrides = {} if updates is None else {"updates": updates}
    return decompose_image(backend, image, *prompts, disable=True, **overrides).nfe


def inpaint_images(backend, pairs, batch: int, config: InpaintConfig) -> float:
    """Seconds to inpaint ``pairs`` in batches of ``batch`` (``batch_images.run``)."""
    from batch_images import run

    seconds, _ = run(backend, pairs, batch, config, seed=0)
    return seconds
