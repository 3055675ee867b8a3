"""``layerdecomp superres``: ×s super-resolution under ``y = Down_s(D(x̂0))`` (§4.1)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import click

from ..tasks.superres import SuperresConfig
from .options import (
    config_from,
    finish,
    load_backend,
    model_options,
    output_option,
    sampling_options,
    tile_option,
    warn_if_large,
)


@click.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@output_option(
    "Output image (PNG), SCALE times the input; OUTPUT with .json receives the metadata."
)
@click.option(
    "--scale",
    default=SuperresConfig.scale,
    show_default=True,
    type=click.IntRange(min=2),
    help="Integer factor (4 or 8 in the paper).",
)
@click.option(
    "--method",
    default=SuperresConfig.method,
    show_default=True,
    type=click.Choice(["backprop", "vae_newton"]),
    help="Error direction: decoder backprop, or a finite difference through the encoder.",
)
@sampling_options(SuperresConfig)
@click.option(
    "--lam",
    default=SuperresConfig.lam,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Constant λ.",
)
@click.option(
    "--perturbation",
    default=SuperresConfig.perturbation,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Std of the noise around x̂0 before the error (the paper's SR perturbation).",
)
@tile_option(SuperresConfig)
@model_options
def superres(image, output, **params):
    """Upscale IMAGE SCALE times; write OUTPUT and OUTPUT.json."""
    from ..io import check_output_path, open_image, to_rgb
    from ..tasks.generate import round_up
    from ..tasks.superres import superres as run_superres

    started = time.perf_counter()
    config = config_from(SuperresConfig, params)
    output = check_output_path(output)
    source = open_image(image, "image")
    rgb = to_rgb(source)
    backend = load_backend(params)
    loaded = time.perf_counter()
    step = math.lcm(backend.size_multiple, config.scale)
    work = tuple(round_up(s * config.scale, step) for s in rgb.size)
    warn_if_large("superres", backend, work, config.tile)
    result = run_superres(
        backend,
        rgb,
        config=config,
        seed=params["seed"],
        disable_progress=True if params["quiet"] else None,
    )
    extra = {"image": str(image), "image_mode": source.mode, "size": list(rgb.size)}
    finish("superres", result, backend, output, started, loaded, extra, params)
