"""The layered files of a decomposition: the contact sheet, OpenRaster and Photoshop.

Each takes the 8-bit images of :func:`layerdecomp.layers.writers.layer_images` (a mapping from
PNG stem to image, with ``stack``: ``(stem, name)`` of the layers front to back, the background
last, and ``masks``: ``(stem, name)`` of the front layers' shares).
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def checkerboard(size: tuple[int, int], cell: int = 8) -> Image.Image:
    """A light-grey checkerboard, the usual backdrop for transparency."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    board = np.where(((ys // cell) + (xs // cell)) % 2 == 0, 204, 153).astype(np.uint8)
    return Image.fromarray(board, mode="L").convert("RGB")


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` cut (with "...") to fit ``width`` pixels in ``font``."""
    if not isinstance(font, ImageFont.FreeTypeFont):  # the bitmap fallback knows Latin-1 only
        text = text.encode("latin-1", "replace").decode("latin-1")
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "..."


def _roles(images) -> list[tuple[str, str | None, str, bool]]:
    """``(label, prompt, stem, over a checkerboard)`` of each panel between input and
    recomposition: every front layer's mask and layer, then the background."""
    two = len(images.stack) == 2
    panels = []
    for i, ((stem, name), (mask, _)) in enumerate(
        zip(images.stack[:-1], images.masks, strict=True)
    ):
        prompt = None if name == stem else name
        panels.append(("mask" if two else f"mask {i + 1}", prompt, mask, False))
        panels.append(("foreground" if two else f"layer {i + 1}", prompt, stem, True))
    stem, name = images.stack[-1]
    panels.append(("background", None if name == stem else name, stem, False))
    return panels


def contact_sheet(input_image: Image.Image, images) -> Image.Image:
    """input | each front layer's mask and the layer over a checkerboard | background |
    recomposition, in one row, labelled with the panel's role and, where known, its prompt."""
    w, h = input_image.size
    scale = max(1, math.ceil(128 / max(1, min(w, h))))  # small images are enlarged (nearest)
    size = (w * scale, h * scale)
    panels: list[tuple[str, str | None, Image.Image]] = [
        ("input", None, input_image.convert("RGB"))
    ]
    for label, prompt, stem, transparent in _roles(images):
        image = images[stem]
        if transparent:
            over = checkerboard(size, cell=max(4, size[0] // 16))
            layer = image.resize(size, Image.NEAREST)
            over.paste(layer, (0, 0), layer)
            image = over
        panels.append((label, prompt, image.convert("RGB")))
    panels.append(("recomposition", None, images["recomposed"]))
    font = ImageFont.load_default()
    lines = 2 if any(prompt for _, prompt, _ in panels) else 1
    label_h, gap = 6 + 12 * lines, 4
    sheet = Image.new(
        "RGB", (len(panels) * (size[0] + gap) + gap, size[1] + label_h + 2 * gap), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for i, (label, prompt, panel) in enumerate(panels):
        x = gap + i * (size[0] + gap)
        sheet.paste(panel.resize(size, Image.NEAREST), (x, gap + label_h))
        draw.text((x + 2, gap), _fit(draw, label, font, size[0] - 4), fill="black", font=font)
        if prompt:
            text = _fit(draw, prompt, font, size[0] - 4)
            draw.text((x + 2, gap + 12), text, fill="dimgray", font=font)
    return sheet


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def merged(images) -> Image.Image:
    """The layers composited "over" each other from the background up (8-bit RGBA, opaque)."""
    out = images[images.stack[-1][0]].convert("RGBA")
    for stem, _ in reversed(images.stack[:-1]):
        out.alpha_composite(images[stem].convert("RGBA"))
    return out


def write_ora(path: Path, images) -> None:
    """An OpenRaster file (GIMP, Krita): the layers front first, named by their prompts, then the
    masks, hidden.

    ``mimetype`` comes first and uncompressed, as the format requires; ``stack.xml`` lists the
    layers top first; ``mergedimage.png`` and a thumbnail (≤ 256 px) complete it.
    """
    w, h = images.size
    flat = merged(images)
    thumbnail = flat.copy()
    thumbnail.thumbnail((256, 256))
    layers = [(stem, name, "visible") for stem, name in images.stack]
    layers += [(stem, name, "hidden") for stem, name in images.masks]
    stack = "".join(
        f'    <layer name={quoteattr(name)} src={quoteattr(f"data/{stem}.png")} x="0" '
        f'y="0" opacity="1.0" visibility="{visibility}"/>\n'
        for stem, name, visibility in layers
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
        for stem, _, _ in layers:
            archive.writestr(f"data/{stem}.png", _png_bytes(images[stem]))
        archive.writestr("mergedimage.png", _png_bytes(flat.convert("RGB")))
        archive.writestr("Thumbnails/thumbnail.png", _png_bytes(thumbnail))


def write_psd(path: Path, images) -> None:
    """A Photoshop file (psd-tools): one 8-bit pixel layer per layer, named by its prompt, with
    its alpha as the layer's transparency, the background at the bottom (opaque); the merged
    image is psd-tools' composite of the layers (the recomposition)."""
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer

    psd: Any = PSDImage.new("RGB", images.size)
    for stem, name in reversed(images.stack):  # a PSD lists its layers bottom first
        layer = PixelLayer.fromarray(np.asarray(images[stem].convert("RGBA")), psd)
        layer.name = name  # the setter also stores the Unicode name (prompts may hold emoji)
    with open(path, "wb") as handle:
        psd.save(handle)


__all__ = ["checkerboard", "contact_sheet", "merged", "write_ora", "write_psd"]
