"""Super-resolution with inexact-Newton steps (§4.1): the API behind ``layerdecomp superres``.

The low-resolution image is the measurement ``y`` of the ``downsample`` constraint
(``y = Down_s(D(x̂0))``, antialiased bicubic); :func:`solvers.sample` runs from pure noise with the
authors' setting (20 steps, K = 10, constant λ = 0.1). The output is ``scale`` times the input; if
that is not a multiple of the model's size multiple, the model runs at the next size that is (the
input resized to match) and the result is resized back.

:func:`layerdecomp.generate.generate` runs the sampling.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from kornia.geometry.transform import resize
from PIL import Image

import solvers

from .constraints.downsample import METHODS, Downsample, Method
from .errors import InputError
from .generate import ConstrainedOutput, ImageLike, generate, round_up
from .io import image_to_tensor, load_image, to_rgb
from .models.base import Backend


def superres(
    backend: Backend,
    image: ImageLike,
    *,
    scale: int = 4,
    method: Method = "backprop",
    prompt: str = "",
    negative_prompt: str = "",
    guidance: float = 0.0,
    steps: int = 20,
    iterations: int = 10,
    lam: solvers.schedules.LambdaSchedule = "constant",
    lam_start: float = 0.1,
    perturbation: float = 0.0,
    direction: str = "newton",
    seed: int | None = None,
    restarts: int = 0,
    num_samples: int = 1,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    **sample_kwargs: Any,
) -> ConstrainedOutput:
    """Upscale ``image`` by ``scale`` with inexact-Newton steps under ``y = Down_s(D(x̂0))`` (§4.1).

    Args:
        backend: a loaded model (:func:`layerdecomp.models.load_model`).
        image: the low-resolution image (PIL or path; any mode).
        scale: the integer upscaling factor (4 or 8 in the paper).
        method: the error direction: ``"backprop"`` (decoder backprop) or ``"vae_newton"``
            (a finite difference through the encoder, no backward pass).
        prompt, negative_prompt, guidance: text conditioning (none by default).
        steps, iterations: sampling steps and K iterations per step (20 and 10).
        lam, lam_start: the λ schedule (constant 0.1).
        perturbation: std of the noise added around x̂0 before the error (§4.1); 0 = off.
        direction: ``"newton"`` or ``"gradient"``.
        seed, restarts, num_samples, callback, disable_progress: see :func:`generate`.
        **sample_kwargs: further :func:`solvers.sample` options (``lam_end``, ``delta0``...).

    Raises:
        InputError: a scale below 2 or an unknown method.
    """
    start = time.perf_counter()
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise InputError(f"scale: expected an integer ≥ 2, got {scale!r}")
    if method not in METHODS:
        raise InputError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    rgb = to_rgb(image if isinstance(image, Image.Image) else load_image(image))
    width, height = rgb.size
    size = (width * scale, height * scale)
    step = math.lcm(backend.size_multiple, scale)
    work = (round_up(size[0], step), round_up(size[1], step))
    low = image_to_tensor(rgb)
    low_work = (work[0] // scale, work[1] // scale)
    if low_work != (width, height):
        low = resize(low, (low_work[1], low_work[0]), interpolation="bicubic", antialias=True)
    constraint = Downsample(low.to(backend.device), scale, codec=backend, method=method)
    return generate(
        backend,
        constraint,
        work,
        size=size,
        prompt=prompt,
        negative_prompt=negative_prompt,
        guidance=guidance,
        steps=steps,
        iterations=iterations,
        direction=direction,
        seed=seed,
        restarts=restarts,
        num_samples=num_samples,
        callback=callback,
        disable_progress=disable_progress,
        parameters={"scale": scale, "method": method, "input_size": [width, height]},
        started=start,
        lam=lam,
        lam_start=lam_start,
        perturbation=perturbation,
        **sample_kwargs,
    )


__all__ = ["superres"]
