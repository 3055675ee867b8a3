"""``layerdecomp superres``: ×s super-resolution under ``y = Down_s(D(x̂0))`` (§4.1)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import click

from ..tasks.superres import SuperresConfig
from .options import (
    config_from,
    config_options,
    finish,
    load_backend,
    model_options,
    output_option,
    warn_if_large,
)


@click.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@output_option(
    "Output image (PNG), SCALE times the input; OUTPUT with .json receives the metadata."
)
@config_options(SuperresConfig)
@model_options
def superres(image, output, **params):
    """Upscale IMAGE SCALE times; write OUTPUT and OUTPUT.json."""
    from ..io import check_output_path, open_image, to_rgb
    from ..tasks.superres import superres as run_superres
    from ..tasks.tiles import round_up

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
