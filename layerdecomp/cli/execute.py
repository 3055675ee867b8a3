"""Running a task's request from the command line, by one rule for every task.

- The output's place is checked and the inputs opened before the model loads (bad input fails
  in words, before any work); missing parent folders are made when the outputs are written.
- An output that is already there is skipped when it was made with the same fingerprint
  (:mod:`layerdecomp.runs.fingerprint`), refused when it was made otherwise, and replaced with
  ``--overwrite``: for one image as for a folder or a glob.
- The outputs are written atomically, the record (``run.json``, ``OUTPUT.json``) last, and a
  stale record is removed first: nothing partial is ever left to pass for complete.
- A folder or a glob (tasks that take ``many``) runs through :func:`layerdecomp.runs.run_folder`:
  shards under ``torchrun`` / ``accelerate launch``, resume, ``manifest.jsonl``.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from itertools import groupby
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from .options import load_backend, warn_if_large


def _marker(task, output: Path) -> Path:
    from ..layers.writers import METADATA

    return output / METADATA if task.output == "folder" else output.with_suffix(".json")


def _complete(task, output: Path) -> bool:
    from ..layers import is_complete

    if task.output == "folder":
        return is_complete(output)
    return output.is_file() and _marker(task, output).is_file()


def _files(request) -> dict[str, Path]:
    """The input files that decide the result, by name (hashed into the fingerprint)."""
    return {
        spec.name: Path(request.inputs[spec.name])
        for spec in request.task.inputs
        if spec.is_file and spec.name in request.inputs
    }


def _check_output(task, output: Path) -> Path:
    from ..io import check_output_folder, check_output_path

    return check_output_folder(output) if task.output == "folder" else check_output_path(output)


def _finished(request, stamp: dict[str, Any]) -> bool:
    """An output already there: ``True`` (skip it) when made with these settings; made with
    others, refused without ``--overwrite``."""
    from ..runs import made_otherwise

    task, output = request.task, request.output
    if not _complete(task, output):
        return False
    why = made_otherwise(_marker(task, output), stamp, request.run.seed)
    if why is None:
        if not request.run.quiet:
            click.echo(f"skipped {output}: made with these settings already", err=True)
        return True
    if not request.run.overwrite:
        raise InputError(f"{output}: {why}; use --overwrite to replace it")
    return False


def _note_large(request, backend, opened) -> None:
    from ..tasks.catalog import WORK_SIZES

    work = WORK_SIZES.get(request.task.name)
    if work is not None:
        size = work(backend, opened, request.config)
        warn_if_large(request.task.name, backend, size, getattr(request.config, "tile", 0))


def write(request, ran, backend, opened, *, stamp, recipe, timings: dict[str, float]) -> None:
    """Write one output and its record (``run.json`` / ``OUTPUT.json``, last)."""
    from ..io import write_outputs
    from ..layers import save_decomposition
    from ..runs.record import run_record

    task, output = request.task, request.output
    inputs = {**request.inputs, **ran.inputs}
    for name in ("image", "mask", "style"):
        if name in inputs:
            inputs[name] = str(inputs[name])
    record = run_record(
        task.name,
        inputs=inputs,
        output=output,
        result=ran.result.record(),
        model=backend.describe(),
        options={**request.model.record(), **_settings(request), "threads": _threads()},
        timings=timings,
        fingerprint=stamp,
        recipe=recipe,
    )
    _marker(task, output).unlink(missing_ok=True)  # never new outputs next to an old record
    output.parent.mkdir(parents=True, exist_ok=True)
    if task.output == "folder":
        save_decomposition(output, opened["rgb"], ran.result, record)
    else:
        write_outputs(ran.result.image, output, record)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _settings(request) -> dict[str, Any]:
    settings = request.settings
    return dataclasses.asdict(settings) if settings is not None else {}


def _say_written(request, ran, timings: dict[str, float], compiles: bool = False) -> None:
    if request.run.quiet:
        return
    result, load = ran.result, timings["load"]
    whole = load + timings["image_total"]
    if request.task.output == "folder":
        parts = f"model load {load:.1f}s, layers {result.seconds:.1f}s"
        rest = timings["image_total"] - result.seconds
        matting = getattr(request.config, "matting", False)
        parts += f", matting and writing {rest:.1f}s" if matting else f", rest {rest:.1f}s"
        if compiles:
            parts += ", with pymatting compiling its kernels: once per environment"
        message = f"wrote {request.output} in {whole:.1f}s ({parts}; nfe={result.nfe})"
        if result.unsure:
            message += f"\nwarning: {result.unsure}"
    else:
        width, height = result.size
        message = f"wrote {request.output} ({width}x{height}, nfe={result.nfe}, {whole:.1f}s)"
    click.echo(message, err=True)


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


def execute(request, recipe: dict[str, Any] | None = None) -> None:
    """Run ``request`` (one image, or a folder or glob for a task that takes ``many``)."""
    from ..runs import image_files

    started = time.perf_counter()
    if request.task.many:
        files, many = image_files(str(request.inputs["image"]))
        if many:
            _many(request, files, started, recipe)
            return
        request = dataclasses.replace(request, inputs={**request.inputs, "image": files[0]})
    _one(request, started, recipe)


def _one(request, started: float, recipe) -> None:
    from ..runs.shards import dtype_name

    task = request.task
    _check_output(task, request.output)
    opened = task.prepare(request)
    seed = secrets.randbits(32) if request.run.seed is None else request.run.seed
    dtype = dtype_name(request.model.dtype, request.model.device)
    stamp = _fingerprint(request, seed, dtype)
    if _finished(request, stamp):
        return
    backend = load_backend(request.model, request.run.quiet)
    load = time.perf_counter() - started
    _note_large(request, backend, opened)
    compiles = getattr(request.config, "matting", False) and not _pymatting_compiled()
    begin = time.perf_counter()
    ran = task.run(backend, request, opened, seed, True if request.run.quiet else None)
    timings = {"load": load, "image_total": time.perf_counter() - begin}
    write(request, ran, backend, opened, stamp=stamp, recipe=recipe, timings=timings)
    _say_written(request, ran, timings, compiles)


def _fingerprint(request, seed: int, dtype: str) -> dict[str, Any]:
    from ..runs import fingerprint

    return fingerprint(request, _files(request), seed=seed, dtype=dtype)


def _many(request, files: list[Path], started: float, recipe) -> None:
    """A folder or glob: this process's shard, resumable (:mod:`layerdecomp.runs`)."""
    from ..runs import Item, Ranks, Task, masks_for, outputs_by_stem, run_folder
    from ..runs.fingerprint import lora_fingerprint
    from ..runs.shards import dtype_name, place

    task, folder = request.task, request.output
    from ..io import check_output_folder

    check_output_folder(folder)  # a place that cannot be written fails before the model loads
    loras = lora_fingerprint(request.model.lora, request.model.allow_pickle)  # once, not per image
    size = request.settings.batch_images if request.settings is not None else 1
    config = request.config
    if size > 1 and (config.sampling.restarts or config.tile):
        raise InputError(
            f"--batch-images {size}: needs --restarts 0 and --tile 0 (a restart draws noise for "
            "the whole batch; a tiled image is batched by its tiles)"
        )
    masks = masks_for(files, request.inputs["mask"]) if "mask" in request.inputs else {}
    name = (
        (lambda f: folder / f.stem)
        if task.output == "folder"
        else (lambda f: folder / f"{f.stem}.png")
    )
    pairs = outputs_by_stem(str(request.inputs["image"]), files, name)
    ranks = Ranks.from_env()
    model = dataclasses.replace(request.model, device=place(request.model.device, ranks))
    dtype = dtype_name(model.dtype, model.device)
    quiet = request.run.quiet or not ranks.main
    run = dataclasses.replace(request.run, quiet=quiet)
    sizes: dict[Path, tuple[int, int]] = {}
    state: dict[str, Any] = {}

    def one(item: Item):
        inputs = {**request.inputs, **item.inputs}
        return dataclasses.replace(request, inputs=inputs, output=item.output, model=model, run=run)

    def validate(item: Item) -> None:
        sizes[item.source] = task.prepare(one(item))["source"].size

    def batches(items: list[Item]) -> list[list[Item]]:
        """Up to ``size`` images of one size each, in the order of the files."""
        found = []
        for _, group in groupby(
            sorted(items, key=lambda i: sizes[i.source]), lambda i: sizes[i.source]
        ):
            group = list(group)
            found += [group[k : k + size] for k in range(0, len(group), size)]
        return found

    def work(batch: list[Item], seed: int) -> None:
        if "backend" not in state:
            state["backend"] = load_backend(model, quiet)
            state["load"] = time.perf_counter() - started
        backend, begin = state["backend"], time.perf_counter()
        requests = [one(item) for item in batch]
        opened = [task.prepare(r) for r in requests]
        if not state.get("noted"):  # said once, before the first image's work
            _note_large(requests[0], backend, opened[0])
            state["noted"] = True
        disable = True if quiet else None
        if len(batch) > 1:
            results = task.run_batch(backend, requests, opened, seed, disable)
        else:
            results = [task.run(backend, requests[0], opened[0], seed, disable)]
        for item, r, o, ran in zip(batch, requests, opened, results, strict=True):
            timings = {"load": state["load"], "image_total": time.perf_counter() - begin}
            write(r, ran, backend, o, stamp=item.fingerprint, recipe=recipe, timings=timings)
            _say_written(r, ran, timings)

    runner = Task(
        fingerprint=lambda item, seed: fingerprint_of(one(item), seed, dtype, item, loras),
        complete=lambda item: _complete(task, item.output),
        validate=validate,
        work=work,
        batches=batches,
    )
    items = [
        Item(
            src, dst, _marker(task, dst), {"image": src, **({"mask": masks[src]} if masks else {})}
        )
        for src, dst in pairs
    ]
    run_folder(
        runner,
        items,
        folder,
        seed=request.run.seed,
        overwrite=request.run.overwrite,
        quiet=request.run.quiet,
        verb="decomposed" if task.output == "folder" else f"{task.name}ed",
        ranks=ranks,
    )


def fingerprint_of(request, seed: int, dtype: str, item, loras=None) -> dict[str, Any]:
    from ..runs import fingerprint

    return fingerprint(request, item.inputs, seed=seed, dtype=dtype, lora=loras)


__all__ = ["execute", "write"]
