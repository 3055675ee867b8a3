"""What one request asks for, checked before it is queued, and how the queue's worker runs it.

An :class:`Order` is a validated request: the uploaded image (decoded with
:func:`layerdecomp.io.open_image`, so the same checks as the command line apply, the
decompression-bomb limit included), the layer prompts, the seed and a
:class:`~layerdecomp.layers.DecomposeConfig`. :func:`run_order` runs it with
:func:`layerdecomp.tasks.decompose_image` and writes the job's folder with
:func:`layerdecomp.layers.save_decomposition`: the same files as ``layerdecomp decompose``.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import InputError
from ..layers import WRITERS, DecomposeConfig, check_prompts, save_decomposition
from ..layers.writers import METADATA, output_files
from .jobs import Job


@dataclass(frozen=True)
class Order:
    """A checked request: everything a run needs."""

    image: Image.Image
    filename: str
    fg: tuple[str, ...]
    bg: str
    seed: int
    config: DecomposeConfig
    formats: tuple[str, ...]


def safe_filename(name: str | None) -> str:
    """The upload's base name with anything but letters, digits, ``.-_`` replaced (for labels)."""
    base = re.split(r"[\\/]", name or "")[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "image"


def read_upload(data: bytes, filename: str | None, scratch: Path, max_pixels: int) -> Image.Image:
    """Decode an uploaded image with :func:`layerdecomp.io.open_image`, as RGB.

    The bytes go to a temporary file in ``scratch`` (removed again) because ``open_image`` reads
    files; its messages name the upload instead of that file.

    Raises:
        InputError: empty, not an image, truncated, a decompression bomb, or over ``max_pixels``.
    """
    from ..io import open_image, to_rgb

    label = safe_filename(filename)
    if not data:
        raise InputError(f"image {label!r}: the upload is empty")
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"upload-{secrets.token_hex(8)}"  # requests run in parallel threads
    path.write_bytes(data)
    try:
        try:
            with Image.open(path) as header:  # the size, before anything is decoded
                width, height = header.size
        except Exception:
            width = height = 0  # open_image below says what is wrong
        if width * height > max_pixels:
            raise InputError(
                f"image {label!r}: {width}x{height} pixels is over this server's limit of "
                f"{max_pixels} pixels"
            )
        try:
            return to_rgb(open_image(path, "image"))
        except InputError as exc:
            raise InputError(str(exc).replace(repr(str(path)), repr(label))) from None
    finally:
        path.unlink(missing_ok=True)


def make_order(
    image: Image.Image,
    filename: str | None,
    fg: list[str],
    bg: str,
    seed: int,
    options: dict[str, Any],
    formats: list[str] | None,
) -> Order:
    """Check the prompts, the options (:class:`DecomposeConfig`'s, by name) and the formats and
    bundle them with the image.

    Raises:
        InputError: an empty prompt, too many foregrounds, an option out of range or unknown,
            an unknown format.
    """
    from ..options import configure

    check_prompts(fg, bg)
    config = configure(DecomposeConfig, None, options)
    chosen = tuple(dict.fromkeys(formats or WRITERS))
    unknown = [f for f in chosen if f not in WRITERS]
    if unknown:
        raise InputError(f"formats: unknown {', '.join(unknown)} (known: {', '.join(WRITERS)})")
    name = safe_filename(filename)
    return Order(image, name, tuple(fg), bg, seed, config, chosen)


def run_order(
    backend, job: Job, *, describe: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    """Decompose ``job.order`` on ``backend`` and write ``job.folder`` (the :data:`~jobs.Runner`).

    ``job.progress`` follows the run: ``{"phase": "layers", "update": i, "updates": n,
    "change": c}`` after each mask update (``n``: the most there can be), then ``final`` (the
    engine stopped: the final layers) and ``writing``. ``describe`` is the model's description
    and ``extra`` more parameters for ``run.json`` (:func:`layerdecomp.runs.record.run_record`).
    """
    from ..runs.record import run_record
    from ..tasks.decompose import decompose_image

    order: Order = job.order
    waited = (job.started or time.time()) - job.submitted

    def progress(info: dict) -> None:
        job.progress = {
            "phase": "final" if info["last"] else "layers",
            "update": info["iteration"] + 1,
            "updates": info["updates"],
            "change": round(float(info["change"]), 6),
        }

    job.progress = {"phase": "layers", "update": 0, "updates": order.config.em.updates}
    begin = time.perf_counter()
    layers = decompose_image(
        backend,
        order.image,
        [*order.fg, order.bg],
        seed=order.seed,
        config=order.config,
        disable=True,
        callback=progress,
    )
    job.progress = {**job.progress, "phase": "writing"}
    metadata = run_record(
        "serve",
        inputs={"image": order.filename},
        output=job.folder.name,
        result=layers.record(),
        model=describe,
        options=extra,
        timings={
            "queued": waited,
            "decompose": layers.seconds,
            "image_total": time.perf_counter() - begin,
        },
        libraries=("fastapi",),
    )
    save_decomposition(job.folder, order.image, layers, metadata, order.formats)
    job.formats = output_files(layers.count, order.formats)
    job.files = [*(f for files in job.formats.values() for f in files), METADATA]
    job.summary = {
        "image": order.filename,
        "seed": order.seed,
        "nfe": layers.nfe,
        "size": list(order.image.size),
        "work_size": layers.trace.get("work_size"),
        "updates_run": len(layers.history),
        "timings": metadata["timings"],
        "warning": layers.unsure,
    }
    job.progress = {**job.progress, "phase": "done"}


__all__ = ["Order", "make_order", "read_upload", "run_order", "safe_filename"]
