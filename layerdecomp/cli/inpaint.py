"""``layerdecomp inpaint``: fill the white region of a mask (§4.1).

IMAGE is a file, a folder or a glob. For one file the result goes to OUTPUT (an image path) and
its metadata to OUTPUT with ``.json``. For a folder or glob OUTPUT is a folder: each image gets
``OUTPUT/<name>.png`` and ``OUTPUT/<name>.json`` (the marker, written last, with the output's
fingerprint), ``OUTPUT/manifest.jsonl`` records every image, and the run goes through
:func:`layerdecomp.runs.run_folder` (shards under ``torchrun`` / ``accelerate launch``, resume,
``--overwrite``). ``--batch-images B`` sends up to B images of one size through the sampler as
one batch (:func:`layerdecomp.tasks.inpaint.inpaint_batch`).
"""

from __future__ import annotations

import secrets
import time
from itertools import groupby
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..tasks.inpaint import InpaintConfig
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
@click.argument("image")
@click.option(
    "--mask",
    required=True,
    type=click.Path(path_type=Path),
    help="Mask image, same size: white = region to fill, black = keep. For a folder or glob: "
    "one mask for every image, or a folder of masks named as the images.",
)
@output_option(
    "Output image (PNG); OUTPUT with .json receives the run's metadata. For a folder or glob: "
    "a folder that receives NAME.png and NAME.json per image, and manifest.jsonl."
)
@config_options(InpaintConfig)
@click.option(
    "--batch-images",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Folder or glob: inpaint up to B images of one size as one denoiser batch (with "
    "--restarts 0 and no --tile; results differ from one-at-a-time runs by the network's "
    "rounding, which the sampler amplifies).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Folder or glob: redo the images whose output was made with other settings (default: "
    "refuse them; outputs made with these settings are skipped).",
)
@model_options
def inpaint(**params):
    """Fill the white region of MASK in IMAGE; write OUTPUT and OUTPUT.json.

    IMAGE may be a folder or a glob (OUTPUT is then a folder); under torchrun or accelerate
    launch its images are shared among the processes, and a rerun skips the outputs made with
    the same settings.
    """
    from ..runs import image_files

    started = time.perf_counter()
    config = config_from(InpaintConfig, params)
    files, many = image_files(params["image"])
    if many:
        _folder(files, config, params, started)
    else:
        _single(files[0], config, params, started)


def _single(image: Path, config: InpaintConfig, params: dict[str, Any], started: float) -> None:
    from ..io import check_output_path, open_image
    from ..runs import fingerprint
    from ..runs.shards import dtype_name

    output = check_output_path(params["output"])
    source = open_image(image, "image")
    fill = _checked_mask(params["mask"], source.size)
    seed = secrets.randbits(32) if params["seed"] is None else params["seed"]
    dtype = dtype_name(params["dtype"], params["device"])
    inputs = {"image": image, "mask": params["mask"]}
    stamp = fingerprint(inpaint, params, inputs, seed=seed, dtype=dtype)
    backend = load_backend(params)
    loaded = time.perf_counter()
    _warn(backend, source.size, config)
    result = _run(backend, [(image, params["mask"])], config, seed, params)[0]
    extra = _extra(image, params["mask"], source.mode, fill, stamp)
    output.with_suffix(".json").unlink(missing_ok=True)  # never a new image next to an old .json
    finish("inpaint", result, backend, output, started, loaded, extra, params)


def _folder(files, config: InpaintConfig, params: dict[str, Any], started: float) -> None:
    """The folder or glob run: this process's shard, resumable (:mod:`layerdecomp.runs`)."""
    from ..io import check_output_folder, open_image
    from ..runs import Item, Ranks, Task, fingerprint, masks_for, outputs_by_stem, run_folder
    from ..runs.shards import dtype_name, place

    folder, size = params["output"], params["batch_images"]
    check_output_folder(folder)  # a place that cannot be written fails before the model loads
    if size > 1 and (config.sampling.restarts or config.tile):
        raise InputError(
            f"--batch-images {size}: needs --restarts 0 and --tile 0 (a restart draws noise for "
            "the whole batch; a tiled image is batched by its tiles)"
        )
    masks = masks_for(files, params["mask"])
    pairs = outputs_by_stem(params["image"], files, lambda file: folder / f"{file.stem}.png")
    ranks = Ranks.from_env()
    device = place(params["device"], ranks)
    dtype = dtype_name(params["dtype"], device)
    placed = {**params, "device": device, "quiet": params["quiet"] or not ranks.main}
    seen: dict[Path, tuple[str, tuple[int, int]]] = {}
    state: dict[str, Any] = {}

    def validate(item: Item) -> None:
        source = open_image(item.source, "image")
        _checked_mask(item.inputs["mask"], source.size)
        seen[item.source] = (source.mode, source.size)

    def batches(items: list[Item]) -> list[list[Item]]:
        """Up to ``size`` images of one size each, in the order of the files."""

        def shape(item: Item) -> tuple[int, int]:
            return seen[item.source][1]

        found = []
        for _, group in groupby(sorted(items, key=shape), shape):
            group = list(group)
            found += [group[k : k + size] for k in range(0, len(group), size)]
        return found

    def work(batch: list[Item], seed: int) -> None:
        if "backend" not in state:
            state["backend"] = load_backend(placed)
            state["loaded"] = time.perf_counter()
            _warn(state["backend"], seen[batch[0].source][1], config, not ranks.main)
        pairs = [(item.source, item.inputs["mask"]) for item in batch]
        results = _run(state["backend"], pairs, config, seed, placed)
        for item, result in zip(batch, results, strict=True):
            mode, shape = seen[item.source]
            fill = _checked_mask(item.inputs["mask"], shape)
            extra = _extra(item.source, item.inputs["mask"], mode, fill, item.fingerprint)
            backend, loaded = state["backend"], state["loaded"]
            finish("inpaint", result, backend, item.output, started, loaded, extra, placed)

    task = Task(
        fingerprint=lambda item, seed: fingerprint(
            inpaint, params, item.inputs, seed=seed, dtype=dtype
        ),
        complete=lambda item: item.output.is_file() and item.marker.is_file(),
        validate=validate,
        work=work,
        batches=batches,
    )
    items = [
        Item(src, out, out.with_suffix(".json"), {"image": src, "mask": masks[src]})
        for src, out in pairs
    ]
    run_folder(
        task,
        items,
        folder,
        seed=params["seed"],
        overwrite=params["overwrite"],
        quiet=params["quiet"],
        verb="inpainted",
        ranks=ranks,
    )


def _checked_mask(mask: Path, size: tuple[int, int]):
    from ..io import load_mask

    return load_mask(mask, size)


def _run(backend, pairs, config: InpaintConfig, seed: int, params: dict[str, Any]) -> list:
    """One result per (image, mask): alone through :func:`inpaint`, or as one batch."""
    from ..tasks.inpaint import inpaint as run_inpaint
    from ..tasks.inpaint import inpaint_batch

    disable = True if params["quiet"] else None
    if len(pairs) == 1:
        image, mask = pairs[0]
        return [
            run_inpaint(backend, image, mask, config=config, seed=seed, disable_progress=disable)
        ]
    images, masks = zip(*pairs, strict=True)
    return inpaint_batch(backend, images, masks, config=config, seed=seed, disable_progress=disable)


def _warn(backend, size: tuple[int, int], config: InpaintConfig, hidden: bool = False) -> None:
    from ..tasks.inpaint import work_size_for

    if not hidden:
        warn_if_large("inpaint", backend, work_size_for(backend, size, config), config.tile)


def _extra(image, mask, mode: str, fill, stamp: dict[str, Any]) -> dict[str, Any]:
    """The command's own metadata: inputs, the image's mode, the share filled, the fingerprint."""
    fraction = sum(fill.histogram()[128:]) / (fill.width * fill.height)
    return {
        "image": str(image),
        "mask": str(mask),
        "image_mode": mode,
        "mask_fill_fraction": round(fraction, 6),
        "fingerprint": stamp,
    }
