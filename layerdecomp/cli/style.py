"""``layerdecomp style``: a prompt in the style of a reference image (CLIP Gram matching)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..tasks.style import StyleConfig
from .options import (
    config_from,
    config_options,
    finish,
    load_backend,
    model_options,
    output_option,
)


@click.command()
@click.option(
    "--style",
    required=True,
    type=click.Path(path_type=Path),
    help="The style reference image.",
)
@output_option("Output image (PNG); OUTPUT with .json receives the metadata.")
@config_options(StyleConfig)
@model_options
def style(style, output, **params):
    """Generate --prompt in the style of the --style image; write OUTPUT and OUTPUT.json."""
    from ..constraints.clip_style import load_clip
    from ..io import check_output_path, open_image, to_rgb
    from ..models import select_device
    from ..tasks.style import stylize

    started = time.perf_counter()
    config = config_from(StyleConfig, params)
    if not config.prompt.strip():
        raise click.UsageError("--prompt: describe what to generate")
    output = check_output_path(output)
    source = open_image(style, "style image")
    rgb = to_rgb(source)
    visual = load_clip(config.clip, config.clip_model, device=select_device(params["device"]))
    backend = load_backend(params)
    loaded = time.perf_counter()
    result = stylize(
        backend,
        rgb,
        config=config,
        clip=visual,
        seed=params["seed"],
        disable_progress=True if params["quiet"] else None,
    )
    extra = {"style": str(style), "style_mode": source.mode, "style_size": list(rgb.size)}
    finish("style", result, backend, output, started, loaded, extra, params)
