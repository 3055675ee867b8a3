"""Writing a decomposition: layer PNGs, a labelled contact sheet, OpenRaster, and run metadata.

Everything is written into a staging folder beside the target and moved into place at the end,
``run.json`` last: a folder with ``run.json`` is complete, and an interrupted run leaves no
partial file in it.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .io import tensor_to_image
from .layers import Layers

OUTPUTS = (
    "foreground.png",
    "background.png",
    "mask.png",
    "recomposed.png",
    "sheet.png",
    "layers.ora",
    "run.json",
)


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


def is_complete(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds every output of a finished run."""
    directory = Path(directory)
    return all((directory / name).is_file() for name in OUTPUTS)


def save_decomposition(
    directory: str | os.PathLike,
    input_image: Image.Image,
    layers: Layers,
    metadata: dict[str, Any],
) -> Path:
    """Write every output of a decomposition into ``directory`` (created if missing).

    The files are staged in a temporary folder beside ``directory`` and moved in at the end,
    ``run.json`` last.
    """
    directory = Path(directory)
    images = layer_images(layers)
    parent = directory.parent if str(directory.parent) else Path(".")
    stage = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-", dir=parent))
    try:
        for name in ("foreground", "background", "mask", "recomposed"):
            images[name].save(stage / f"{name}.png")
        contact_sheet(input_image, images).save(stage / "sheet.png")
        write_ora(stage / "layers.ora", images)
        (stage / "run.json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        if not directory.exists():
            os.rename(stage, directory)
            return directory
        for name in OUTPUTS:  # run.json last: its presence marks a complete folder
            os.replace(stage / name, directory / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return directory


__all__ = [
    "OUTPUTS",
    "contact_sheet",
    "is_complete",
    "layer_images",
    "save_decomposition",
    "write_ora",
]
