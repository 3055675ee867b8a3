"""``layerdecomp inpaint``: fill the white region of a mask (§4.1)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..tasks.inpaint import InpaintConfig
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
@click.option(
    "--mask",
    required=True,
    type=click.Path(path_type=Path),
    help="Mask image, same size: white = region to fill, black = keep.",
)
@output_option("Output image (PNG); OUTPUT with .json receives the run's metadata.")
@sampling_options(InpaintConfig)
@click.option(
    "--paste-back/--no-paste-back",
    default=InpaintConfig.paste_back,
    show_default=True,
    help="Keep the unmasked pixels exactly (or show the raw decode).",
)
@tile_option(InpaintConfig)
@model_options
def inpaint(image, mask, output, **params):
    """Fill the white region of MASK in IMAGE; write OUTPUT and OUTPUT.json."""
    from ..io import check_output_path, load_mask, open_image, to_rgb
    from ..tasks.generate import round_up
    from ..tasks.inpaint import inpaint as run_inpaint

    started = time.perf_counter()
    config = config_from(InpaintConfig, params)
    output = check_output_path(output)
    source = open_image(image, "image")
    rgb = to_rgb(source)
    fill = load_mask(mask, rgb.size)
    backend = load_backend(params)
    loaded = time.perf_counter()
    multiple = backend.size_multiple
    warn_if_large("inpaint", backend, tuple(round_up(s, multiple) for s in rgb.size), config.tile)
    result = run_inpaint(
        backend,
        rgb,
        fill,
        config=config,
        seed=params["seed"],
        disable_progress=True if params["quiet"] else None,
    )
    fraction = sum(fill.histogram()[128:]) / (fill.width * fill.height)
    extra = {
        "image": str(image),
        "mask": str(mask),
        "image_mode": source.mode,
        "mask_fill_fraction": round(fraction, 6),
    }
    finish("inpaint", result, backend, output, started, loaded, extra, params)
