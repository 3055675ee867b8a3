"""``layerdecomp decompose``: foreground, background and mask from two prompts (§4.2).

IMAGE is a file, a folder, or a glob. For one file the outputs go to DIR; otherwise each image
gets ``DIR/<name>/``, and images whose folder is already complete are skipped, so an interrupted
run resumes where it stopped.
"""

from __future__ import annotations

import glob
import secrets
import time
from dataclasses import fields
from pathlib import Path

import click
from PIL import Image

from ..errors import InputError
from ..layers import DecomposeConfig
from .options import (
    MODEL_OPTIONS,
    RECIPE_META,
    config_from,
    load_backend,
    model_options,
    output_option,
    plain,
    versions,
)

_GLOB_CHARS = set("*?[")


def collect_inputs(image: str, output: Path) -> list[tuple[Path, Path]]:
    """(input file, output folder) pairs for IMAGE (file, folder or glob) under DIR."""
    if output.exists() and not output.is_dir():
        raise InputError(f"output {str(output)!r}: is a file, not a folder")
    path = Path(image)
    if path.is_file():
        return [(path, output)]
    if path.is_dir():
        extensions = set(Image.registered_extensions())
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in extensions)
        what = f"folder {image!r}"
    elif _GLOB_CHARS & set(image):
        files = sorted(Path(p) for p in glob.glob(image) if Path(p).is_file())
        what = f"pattern {image!r}"
    else:
        raise InputError(f"image {image!r}: no such file, folder or pattern")
    if not files:
        raise InputError(f"{what}: no image files")
    pairs, seen = [], {}
    for file in files:
        if file.stem in seen:
            raise InputError(
                f"{what}: {str(seen[file.stem])!r} and {str(file)!r} would both write to "
                f"{str(output / file.stem)!r}"
            )
        seen[file.stem] = file
        pairs.append((file, output / file.stem))
    return pairs


@click.command()
@click.argument("image")
@click.option("--fg", required=True, help="Prompt of the foreground layer.")
@click.option("--bg", required=True, help="Prompt of the background layer.")
@output_option("Output folder (one sub-folder per image for a folder or glob).")
@click.option(
    "--iterations",
    default=DecomposeConfig.iterations,
    show_default=True,
    type=click.IntRange(min=1),
    help="Mask updates at most.",
)
@click.option(
    "--samples",
    default=DecomposeConfig.samples,
    show_default=True,
    type=click.IntRange(min=1),
    help="K samples per layer and iteration.",
)
@click.option(
    "--noise-level",
    default=DecomposeConfig.noise_level,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    help="The single noise level, as a fraction of the schedule.",
)
@click.option(
    "--newton-iters",
    default=DecomposeConfig.newton_iters,
    show_default=True,
    type=click.IntRange(min=1),
    help="Inexact-Newton iterations per sample.",
)
@click.option(
    "--guidance",
    default=DecomposeConfig.guidance,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="CFG weight w of the layer prompts.",
)
@click.option(
    "--restarts",
    default=DecomposeConfig.restarts,
    show_default=True,
    type=click.IntRange(min=1),
    help="Runs from different random masks (batched); the one that fits the prompts best is kept.",
)
@click.option(
    "--negative-prompt", default=DecomposeConfig.negative_prompt, help="Unconditional prompt."
)
@click.option(
    "--work-side",
    type=click.IntRange(min=0),
    default=None,
    help="Longer side, in pixels, the model works at (default: the model's native size; "
    "0: the image's own). The outputs always have the input's size.",
)
@model_options
def decompose(image, fg, bg, output, work_side, **params):
    """Split IMAGE into foreground, background and mask; write them to OUTPUT."""
    started = time.perf_counter()
    for name, prompt in (("--fg", fg), ("--bg", bg)):
        if not prompt.strip():
            raise InputError(f"{name}: the prompt is empty; describe the layer")
    config = config_from(DecomposeConfig, params)
    quiet, seed = params["quiet"], params["seed"]
    pairs = collect_inputs(image, output)
    from ..io import open_image, to_rgb
    from ..layers import is_complete, save_decomposition

    todo = [(src, dst) for src, dst in pairs if len(pairs) == 1 or not is_complete(dst)]
    for src, _ in todo:  # validate every input before any work
        open_image(src, "image")
    if not todo:
        click.echo(f"all {len(pairs)} images already decomposed in {output}", err=True)
        return
    seed = secrets.randbits(32) if seed is None else seed

    from ..tasks.decompose import decompose_image

    backend = load_backend(params)
    loaded = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(todo, desc="images", disable=quiet or len(todo) == 1, unit="image")
    for src, dst in bar:
        begin = time.perf_counter()
        rgb = to_rgb(open_image(src, "image"))
        layers = decompose_image(
            backend,
            rgb,
            fg,
            bg,
            seed=seed,
            config=config,
            disable=True if quiet else None,
            work_side=work_side,
        )
        metadata = {
            "command": "decompose",
            "image": str(src),
            "output": str(dst),
            "size": list(rgb.size),
            "fg_prompt": fg,
            "bg_prompt": bg,
            "seed": seed,
            "parameters": {
                **{f.name: getattr(config, f.name) for f in fields(config)},
                "work_side": work_side,
                **plain(params, MODEL_OPTIONS),
            },
            "model": backend.describe(),
            "timestep": layers.config.get("timestep"),
            "work_size": layers.config.get("work_size"),
            "nfe": layers.nfe,
            "mask_change": [round(c, 6) for c in layers.history],
            "iterations_run": len(layers.history),
            "swapped": layers.swapped,
            "restart": layers.restart,
            "timings": {
                "load": round(loaded - started, 4),
                "decompose": round(layers.seconds, 4),
                "image_total": round(time.perf_counter() - begin, 4),
            },
            "versions": versions(),
        }
        recipe = click.get_current_context().meta.get(RECIPE_META)
        if recipe is not None:
            metadata["recipe"] = recipe
        save_decomposition(dst, rgb, layers, metadata)
        if not quiet:
            click.echo(f"wrote {dst} (nfe={layers.nfe}, {layers.seconds:.1f}s)", err=True)
