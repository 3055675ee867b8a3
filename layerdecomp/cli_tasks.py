"""``layerdecomp superres``, ``style``, ``run`` (recipes) and ``constraints`` (the registry).

Same rules as ``inpaint``: inputs are validated before any model is loaded, every user error is one
``error: …`` line, and the output image and its ``.json`` metadata are written atomically.
``run RECIPE [KEY=VALUE ...]`` runs a recipe (:mod:`layerdecomp.recipes`) through the command of
its task, or, for a constraint name, through the generic constraint task.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .cli import _versions, load_backend, main, model_options

RECIPE_META = "layerdecomp.recipe"
"""``click.Context.meta`` key under which ``run`` passes its recipe to the task command."""


def _model_options(function):
    """The model options plus the seed, restart, direction and quiet options of the tasks."""
    options = [
        model_options,
        click.option(
            "--seed", type=int, default=None, help="Random seed (default: drawn, recorded)."
        ),
        click.option(
            "--restarts",
            default=0,
            show_default=True,
            type=click.IntRange(min=0),
            help="Warm restarts.",
        ),
        click.option(
            "--direction",
            default="newton",
            show_default=True,
            type=click.Choice(["newton", "gradient"]),
            help="Iteration direction.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _finish(
    command: str,
    result,
    backend,
    output: Path,
    started: float,
    loaded: float,
    extra: dict[str, Any],
    cli_parameters: dict[str, Any],
    quiet: bool,
) -> None:
    """Assemble the metadata like ``inpaint`` does and write image + JSON atomically."""
    from .io import write_outputs

    metadata = {
        "command": command,
        **extra,
        "output": str(output),
        "model": backend.describe(),
        "device": str(backend.device),
        "dtype": str(backend.dtype).removeprefix("torch."),
        **result.metadata(),
        "versions": _versions(),
    }
    recipe = click.get_current_context().meta.get(RECIPE_META)
    if recipe is not None:
        metadata["recipe"] = recipe
    metadata["parameters"] = {
        **metadata["parameters"],
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in cli_parameters.items()},
    }
    metadata["timings"] = {
        "load": round(loaded - started, 4),
        **metadata["timings"],
        "total": round(time.perf_counter() - started, 4),
    }
    write_outputs(result.image, output, metadata)
    if not quiet:
        click.echo(
            f"wrote {output} ({result.size[0]}x{result.size[1]}, nfe={result.nfe}, "
            f"{metadata['timings']['total']:.1f}s)",
            err=True,
        )


# ---------------------------------------------------------------------- superres


@main.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output image (PNG), SCALE times the input; OUTPUT with .json receives the metadata.",
)
@click.option(
    "--scale", default="4", show_default=True, type=click.Choice(["2", "4", "8"]), help="Factor."
)
@click.option(
    "--method",
    default="backprop",
    show_default=True,
    type=click.Choice(["backprop", "vae_newton"]),
    help="Error direction: decoder backprop, or a finite difference through the encoder.",
)
@click.option("--prompt", default="", show_default=True, help="Text prompt.")
@click.option("--negative-prompt", default="", help="Negative prompt (with --guidance > 0).")
@click.option(
    "--guidance",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="CFG weight w: (1+w)·ε_c − w·ε_u; 0 = no guidance.",
)
@click.option(
    "--steps", default=20, show_default=True, type=click.IntRange(min=1), help="Sampling steps."
)
@click.option(
    "--iters",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="Newton (or gradient) iterations per step.",
)
@click.option(
    "--lam", default=0.1, show_default=True, type=click.FloatRange(min=0.0), help="Constant λ."
)
@click.option(
    "--perturbation",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Std of the noise around x̂0 before the error (the paper's SR perturbation).",
)
@_model_options
def superres(
    image,
    output,
    scale,
    method,
    prompt,
    negative_prompt,
    guidance,
    steps,
    iters,
    lam,
    perturbation,
    model,
    model_config,
    allow_pickle,
    seed,
    restarts,
    device,
    dtype,
    direction,
    quiet,
):
    """Upscale IMAGE SCALE times; write OUTPUT and OUTPUT.json."""
    from .io import check_output_path, open_image, to_rgb

    started = time.perf_counter()
    output = check_output_path(output)
    source = open_image(image, "image")
    rgb = to_rgb(source)
    backend = load_backend(model, model_config, allow_pickle, device, dtype)
    loaded = time.perf_counter()
    from .superres import superres as run_superres

    result = run_superres(
        backend,
        rgb,
        scale=int(scale),
        method=method,
        prompt=prompt,
        negative_prompt=negative_prompt,
        guidance=guidance,
        steps=steps,
        iterations=iters,
        lam="constant",
        lam_start=lam,
        perturbation=perturbation,
        direction=direction,
        seed=seed,
        restarts=restarts,
        disable_progress=True if quiet else None,
    )
    _finish(
        "superres",
        result,
        backend,
        output,
        started,
        loaded,
        {"image": str(image), "image_mode": source.mode, "size": list(rgb.size)},
        dict(
            model=model,
            model_config=model_config,
            allow_pickle=allow_pickle,
            device=device,
            dtype=dtype,
            quiet=quiet,
        ),
        quiet,
    )


# ---------------------------------------------------------------------- style


@main.command()
@click.option(
    "--style",
    "style_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The style reference image.",
)
@click.option("--prompt", required=True, help="Content prompt.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output image (PNG); OUTPUT with .json receives the metadata.",
)
@click.option("--negative-prompt", default="", help="Negative (unconditional) prompt.")
@click.option(
    "--guidance",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="CFG weight w: (1+w)·ε_c − w·ε_u.",
)
@click.option(
    "--steps", default=20, show_default=True, type=click.IntRange(min=1), help="Sampling steps."
)
@click.option(
    "--iters",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Newton (or gradient) iterations per step.",
)
@click.option("--lam-start", default=0.5, show_default=True, type=click.FloatRange(min=0.0))
@click.option("--lam-end", default=0.1, show_default=True, type=click.FloatRange(min=0.0))
@click.option(
    "--clip",
    default="openai",
    show_default=True,
    help="CLIP weights: an open_clip pretrained tag, a checkpoint file, or an open_clip folder.",
)
@click.option(
    "--clip-model",
    default="ViT-B-16",
    show_default=True,
    help="open_clip architecture (or a model-config JSON file).",
)
@click.option(
    "--block",
    default=2,
    show_default=True,
    type=click.IntRange(min=0),
    help="CLIP residual block whose tokens give the Gram matrix (0-based).",
)
@click.option("--width", default=0, type=click.IntRange(min=0), help="Output width (0: native).")
@click.option("--height", default=0, type=click.IntRange(min=0), help="Output height (0: native).")
@_model_options
def style(
    style_path,
    prompt,
    output,
    negative_prompt,
    guidance,
    steps,
    iters,
    lam_start,
    lam_end,
    clip,
    clip_model,
    block,
    width,
    height,
    model,
    model_config,
    allow_pickle,
    seed,
    restarts,
    device,
    dtype,
    direction,
    quiet,
):
    """Generate PROMPT in the style of the --style image; write OUTPUT and OUTPUT.json."""
    from .constraints.clip_style import load_clip
    from .io import check_output_path, open_image, to_rgb
    from .models.base import select_device

    started = time.perf_counter()
    output = check_output_path(output)
    source = open_image(style_path, "style image")
    rgb = to_rgb(source)
    visual = load_clip(clip, clip_model, device=select_device(device))
    backend = load_backend(model, model_config, allow_pickle, device, dtype)
    loaded = time.perf_counter()
    from .models.base import native_size
    from .style import stylize

    native = native_size(backend)
    size = (width or native[0], height or native[1])
    result = stylize(
        backend,
        rgb,
        prompt=prompt,
        clip=visual,
        clip_model=clip_model,
        block=block,
        size=size,
        negative_prompt=negative_prompt,
        guidance=guidance,
        steps=steps,
        iterations=iters,
        lam_start=lam_start,
        lam_end=lam_end,
        direction=direction,
        seed=seed,
        restarts=restarts,
        disable_progress=True if quiet else None,
    )
    result.parameters["clip"] = clip
    _finish(
        "style",
        result,
        backend,
        output,
        started,
        loaded,
        {"style": str(style_path), "style_mode": source.mode, "style_size": list(rgb.size)},
        dict(
            model=model,
            model_config=model_config,
            allow_pickle=allow_pickle,
            device=device,
            dtype=dtype,
            quiet=quiet,
            width=width,
            height=height,
        ),
        quiet,
    )


__all__ = ["style", "superres"]
