"""Writing a decomposition: the output formats behind one table, and the run folder.

:data:`WRITERS` maps a format name to a :class:`Writer` (the files it makes and the function that
writes them): ``png`` (foreground RGBA, background, mask, recomposition), ``sheet`` (a labelled
contact sheet) and ``ora`` (OpenRaster, for GIMP and Krita). A new format (PSD, say) joins with
``WRITERS["psd"] = Writer(("layers.psd",), write_psd)``. :func:`save_decomposition` writes every
chosen format and ``run.json`` with :func:`layerdecomp.io.write_atomically`, ``run.json`` last:
a folder with ``run.json`` is complete, and an interrupted run leaves no partial file in it.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..io import tensor_to_image, write_atomically
from .engine import Layers

LayerImages = dict[str, Image.Image]


def _gray(mask) -> Image.Image:
    return tensor_to_image(mask.expand(-1, 3, -1, -1) * 2 - 1).convert("L")


def layer_images(layers: Layers) -> dict[str, Image.Image]:
    """The output images: foreground (RGBA, alpha = mask), background, mask, recomposition."""
    alpha = _gray(layers.mask)
    foreground = tensor_to_image(layers.foreground).convert("RGBA")
    foreground.putalpha(alpha)
    return {
        "foreground": foreground,
        "background": tensor_to_image(layers.background),
        "mask": alpha,
        "recomposed": tensor_to_image(layers.recomposition),
    }


def checkerboard(size: tuple[int, int], cell: int = 8) -> Image.Image:
    """A light-grey checkerboard, the usual backdrop for transparency."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    board = np.where(((ys // cell) + (xs // cell)) % 2 == 0, 204, 153).astype(np.uint8)
    return Image.fromarray(board, mode="L").convert("RGB")


def contact_sheet(input_image: Image.Image, images: dict[str, Image.Image]) -> Image.Image:
    """input | mask | foreground over a checkerboard | background | recomposition, labelled."""
    w, h = input_image.size
    scale = max(1, math.ceil(128 / max(1, min(w, h))))  # small images are enlarged (nearest)
    size = (w * scale, h * scale)
    over = checkerboard(size, cell=max(4, size[0] // 16))
    fg = images["foreground"].resize(size, Image.NEAREST)
    over.paste(fg, (0, 0), fg)
    panels = [
        ("input", input_image.convert("RGB")),
        ("mask", images["mask"].convert("RGB")),
        ("foreground", over),
        ("background", images["background"]),
        ("recomposition", images["recomposed"]),
    ]
    font = ImageFont.load_default()
    label_h, gap = 18, 4
    sheet = Image.new(
        "RGB", (len(panels) * (size[0] + gap) + gap, size[1] + label_h + 2 * gap), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for i, (label, panel) in enumerate(panels):
        x = gap + i * (size[0] + gap)
        sheet.paste(panel.resize(size, Image.NEAREST), (x, gap + label_h))
        draw.text((x + 2, gap), label, fill="black", font=font)
    return sheet


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_ora(path: Path, images: dict[str, Image.Image]) -> None:
    """An OpenRaster file (GIMP, Krita): foreground above background, the mask hidden.

    ``mimetype`` comes first and uncompressed, as the format requires; ``stack.xml`` lists the
    layers top first; ``mergedimage.png`` and a thumbnail (≤ 256 px) complete it.
    """
    w, h = images["background"].size
    merged = images["background"].convert("RGBA")
    merged.alpha_composite(images["foreground"])
    thumbnail = merged.copy()
    thumbnail.thumbnail((256, 256))
    layers = [("foreground", "visible"), ("background", "visible"), ("mask", "hidden")]
    stack = "".join(
        f'    <layer name={quoteattr(name)} src={quoteattr(f"data/{name}.png")} x="0" '
        f'y="0" opacity="1.0" visibility="{visibility}"/>\n'
        for name, visibility in layers
    )
    xml = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        f'<image version="0.0.3" w="{w}" h="{h}">\n  <stack>\n{stack}  </stack>\n</image>\n'
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), "image/openraster", compress_type=zipfile.ZIP_STORED
        )
        archive.writestr("stack.xml", xml, compress_type=zipfile.ZIP_DEFLATED)
        for name, _ in layers:
            archive.writestr(f"data/{name}.png", _png_bytes(images[name]))
        archive.writestr("mergedimage.png", _png_bytes(merged.convert("RGB")))
        archive.writestr("Thumbnails/thumbnail.png", _png_bytes(thumbnail))


FileWriter = Callable[[Path, Image.Image, LayerImages], None]
"""``write(path, input_image, images)``: writes one file of a format to ``path``."""


def _png(name: str) -> FileWriter:
    return lambda path, input_image, images: images[name].save(path, format="PNG")


def _sheet(path: Path, input_image: Image.Image, images: LayerImages) -> None:
    contact_sheet(input_image, images).save(path, format="PNG")


def _ora(path: Path, input_image: Image.Image, images: LayerImages) -> None:
    write_ora(path, images)


@dataclass(frozen=True)
class Writer:
    """An output format: the files it makes (names in the run folder) and how each is written."""

    files: dict[str, FileWriter]
    description: str = ""


WRITERS: dict[str, Writer] = {
    "png": Writer(
        {f"{n}.png": _png(n) for n in ("foreground", "background", "mask", "recomposed")},
        "foreground (RGBA, alpha = mask), background, mask and recomposition PNGs",
    ),
    "sheet": Writer(
        {"sheet.png": _sheet}, "input | mask | foreground | background | recomposition"
    ),
    "ora": Writer({"layers.ora": _ora}, "OpenRaster layers for GIMP and Krita"),
}
"""The output formats by name; every format is written by default."""

METADATA = "run.json"
OUTPUTS = (*(f for w in WRITERS.values() for f in w.files), METADATA)
"""Every file of a run folder with the default formats, ``run.json`` last."""


def is_complete(directory: str | os.PathLike, formats: Sequence[str] | None = None) -> bool:
    """True when ``directory`` holds every output of a finished run (of ``formats``)."""
    directory = Path(directory)
    names = [f for name in (formats or WRITERS) for f in WRITERS[name].files]
    return all((directory / name).is_file() for name in (*names, METADATA))


def save_decomposition(
    directory: str | os.PathLike,
    input_image: Image.Image,
    layers: Layers,
    metadata: dict[str, Any],
    formats: Sequence[str] | None = None,
) -> Path:
    """Write the chosen ``formats`` (default: all of :data:`WRITERS`) and ``run.json``.

    ``directory`` is created if missing (and removed again if nothing could be written).

    Raises:
        ValueError: an unknown format name.
        InputError: NaN/Inf in the layers, or a file that cannot be written.
    """
    formats = list(formats or WRITERS)
    unknown = [f for f in formats if f not in WRITERS]
    if unknown:
        raise ValueError(f"formats: unknown {unknown} (known: {', '.join(WRITERS)})")
    directory = Path(directory)
    images = layer_images(layers)  # refuses NaN/Inf before anything is created
    text = json.dumps(metadata, indent=2, default=str) + "\n"
    jobs = [
        (directory / name, lambda p, w=write: w(p, input_image, images))
        for fmt in formats
        for name, write in WRITERS[fmt].files.items()
    ]
    jobs.append((directory / METADATA, lambda p: p.write_text(text, encoding="utf-8")))
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        write_atomically(jobs)
    except BaseException:
        if created and not any(directory.iterdir()):
            directory.rmdir()
        raise
    return directory


__all__ = [
    "OUTPUTS",
    "WRITERS",
    "Writer",
    "checkerboard",
    "contact_sheet",
    "is_complete",
    "layer_images",
    "save_decomposition",
    "write_ora",
]
