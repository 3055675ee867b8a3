"""``layerdecomp decompose``: layers and their masks from prompts, front to back (§4.2).

``--fg`` is repeatable: ``--fg P1 --fg P2 --bg PB`` asks for three layers, P1 in front.

IMAGE is a file, a folder, or a glob. For one file the outputs go to DIR. For a folder or glob
each image gets ``DIR/<name>/``, and the run goes through :func:`layerdecomp.runs.run_folder`:
under ``torchrun`` or ``accelerate launch`` every process takes its shard; an image whose folder
was made with the same fingerprint (input, prompts, settings, model, seed, version) is skipped,
one made otherwise is refused (or redone with ``--overwrite``), and ``DIR/manifest.jsonl``
records every image. The work of one image is :func:`decompose_one`.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..layers import MAX_LAYERS, DecomposeConfig
from .options import (
    MODEL_OPTIONS,
    RECIPE_META,
    config_from,
    config_options,
    load_backend,
    model_options,
    output_option,
    plain,
)


def collect_inputs(image: str, output: Path) -> tuple[list[tuple[Path, Path]], bool]:
    """(input file, output folder) pairs for IMAGE (file, folder or glob) under DIR, and whether
    IMAGE named many (a folder or glob: one sub-folder each) rather than one file."""
    from ..io import check_output_folder
    from ..runs import image_files, outputs_by_stem

    check_output_folder(output)  # a place that cannot be written fails before the model loads
    files, many = image_files(image)
    if not many:
        return [(files[0], output)], False
    return outputs_by_stem(image, files, lambda file: output / file.stem), True


@click.command()
@click.argument("image")
@click.option(
    "--fg",
    required=True,
    multiple=True,
    help="Prompt of a foreground layer; repeat it for more layers, the front one first "
    f"(at most {MAX_LAYERS - 1}).",
)
@click.option("--bg", required=True, help="Prompt of the background layer.")
@output_option("Output folder (one sub-folder per image for a folder or glob).")
@config_options(DecomposeConfig)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an output folder made with other settings (default: refuse it; one made "
    "with these settings is skipped), for one image as for a folder or glob.",
)
@model_options
def decompose(**params):
    """Split IMAGE into layers (each --fg, front first, and --bg) with their masks; write them to
    OUTPUT.

    Under torchrun or accelerate launch, the images of a folder or glob are shared among the
    processes. The layer engine already batches every sample of one image into each denoiser
    call, so images are not batched together (inpaint's --batch-images does that).
    """
    from ..runs import fingerprint
    from ..runs.shards import dtype_name

    started = time.perf_counter()
    for name, prompt in [*(("fg", p) for p in params["fg"]), ("bg", params["bg"])]:
        if not prompt.strip():
            raise InputError(f"--{name}: the prompt is empty; describe the layer")
    if len(params["fg"]) > MAX_LAYERS - 1:
        raise InputError(
            f"--fg: {len(params['fg'])} foreground layers given; at most {MAX_LAYERS - 1} "
            "(with the background)"
        )
    config = config_from(DecomposeConfig, params)
    pairs, many = collect_inputs(params["image"], params["output"])
    if many:
        _folder(pairs, config, params, started)
        return
    from ..io import open_image

    src, dst = pairs[0]
    open_image(src, "image")  # a bad input before the model loads
    seed = secrets.randbits(32) if params["seed"] is None else params["seed"]
    dtype = dtype_name(params["dtype"], params["device"])
    stamp = fingerprint(decompose, params, {"image": src}, seed=seed, dtype=dtype)
    if _finished(dst, stamp, params):
        return
    backend = load_backend(params)
    load = time.perf_counter() - started
    decompose_one(backend, src, dst, config, params, seed=seed, fingerprint=stamp, load=load)


def _finished(dst: Path, stamp: dict[str, Any], params: dict[str, Any]) -> bool:
    """One image, as a folder's images are: ``dst`` already made with these settings is kept
    (``True``: nothing to do); made with others, it is refused without ``--overwrite``."""
    from ..layers import is_complete
    from ..layers.writers import METADATA
    from ..runs import made_otherwise

    if not is_complete(dst):
        return False
    why = made_otherwise(dst / METADATA, stamp, params["seed"])
    if why is None:
        if not params["quiet"]:
            click.echo(f"skipped {dst}: made with these settings already", err=True)
        return True
    if not params["overwrite"]:
        raise InputError(f"{dst}: {why}; use --overwrite to replace it")
    return False


def _folder(pairs, config, params, started) -> None:
    """The folder or glob run: this process's shard, resumable (:mod:`layerdecomp.runs`)."""
    from ..io import open_image
    from ..layers import is_complete
    from ..layers.writers import METADATA
    from ..runs import Item, Ranks, Task, fingerprint, run_folder
    from ..runs.shards import dtype_name, place

    ranks = Ranks.from_env()
    device = place(params["device"], ranks)
    dtype = dtype_name(params["dtype"], device)
    placed = {**params, "device": device, "quiet": params["quiet"] or not ranks.main}
    loaded: dict[str, Any] = {}

    def work(batch: list[Item], seed: int) -> None:
        if "backend" not in loaded:
            loaded["backend"] = load_backend(placed)
            loaded["load"] = time.perf_counter() - started
        for item in batch:
            decompose_one(
                loaded["backend"],
                item.source,
                item.output,
                config,
                placed,
                seed=seed,
                fingerprint=item.fingerprint,
                load=loaded["load"],
            )

    task = Task(
        fingerprint=lambda item, seed: fingerprint(
            decompose, params, item.inputs, seed=seed, dtype=dtype
        ),
        complete=lambda item: is_complete(item.output),
        validate=lambda item: open_image(item.source, "image"),
        work=work,
    )
    items = [Item(src, dst, dst / METADATA, {"image": src}) for src, dst in pairs]
    run_folder(
        task,
        items,
        params["output"],
        seed=params["seed"],
        overwrite=params["overwrite"],
        quiet=params["quiet"],
        verb="decomposed",
        ranks=ranks,
    )


def decompose_one(
    backend,
    src: Path,
    dst: Path,
    config: DecomposeConfig,
    params: dict[str, Any],
    *,
    seed: int,
    fingerprint: dict[str, Any],
    load: float,
) -> None:
    """Decompose the image ``src`` and write its folder ``dst`` (``run.json`` last)."""
    from ..io import open_image, to_rgb
    from ..layers import save_decomposition
    from ..layers.writers import METADATA
    from ..runs.fingerprint import versions
    from ..tasks.decompose import decompose_image

    begin = time.perf_counter()
    quiet, fg, bg = params["quiet"], params["fg"], params["bg"]
    compiles = config.matting and not _pymatting_compiled()
    rgb = to_rgb(open_image(src, "image"))
    layers = decompose_image(
        backend, rgb, [*fg, bg], seed=seed, config=config, disable=True if quiet else None
    )
    record = layers.record()
    metadata = {
        "command": "decompose",
        "image": str(src),
        "output": str(dst),
        **record,
        "parameters": {**record["parameters"], **plain(params, MODEL_OPTIONS)},
        "model": backend.describe(),
        "timings": {
            "load": round(load, 4),
            "decompose": round(layers.seconds, 4),
            "image_total": round(time.perf_counter() - begin, 4),
        },
        "versions": versions(),
        "fingerprint": fingerprint,
    }
    recipe = click.get_current_context().meta.get(RECIPE_META)
    if recipe is not None:
        metadata["recipe"] = recipe
    (dst / METADATA).unlink(missing_ok=True)  # never new files next to an old run.json
    save_decomposition(dst, rgb, layers, metadata)
    if not quiet:
        whole = metadata["timings"]["image_total"] + load
        parts = f"model load {load:.1f}s, layers {layers.seconds:.1f}s"
        rest = metadata["timings"]["image_total"] - layers.seconds
        parts += f", matting and writing {rest:.1f}s" if config.matting else f", rest {rest:.1f}s"
        if compiles:
            parts += ", with pymatting compiling its kernels: once per environment"
        click.echo(f"wrote {dst} in {whole:.1f}s ({parts}; nfe={layers.nfe})", err=True)


def _pymatting_compiled() -> bool:
    """Whether pymatting's numba kernels are in numba's cache already (else the first matting
    compiles them, about a minute of CPU); looked up without importing pymatting."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("pymatting")
    if spec is None or spec.origin is None:
        return True  # matting will say what is missing
    where = os.environ.get("NUMBA_CACHE_DIR") or Path(spec.origin).parent
    return any(Path(where).rglob("*.nbi"))
