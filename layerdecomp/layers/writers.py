"""Writing a decomposition: the output formats behind one table, and the run folder.

:data:`WRITERS` maps a format name to a :class:`Writer` (the files it makes and the function that
writes each): ``png`` (the layers as PNGs), ``sheet`` (a labelled contact sheet), ``ora``
(OpenRaster, for GIMP and Krita) and ``psd`` (Photoshop, with psd-tools). A new format joins with
``WRITERS["name"] = Writer({"file.ext": write}, "description")``. :func:`save_decomposition`
writes every chosen format and ``run.json`` with :func:`layerdecomp.io.write_atomically`,
``run.json`` last: a folder with ``run.json`` is complete, and an interrupted run leaves no
partial file in it. ``run.json`` lists the files each format wrote under ``"files"``
(``{"png": [...], "sheet": ["sheet.png"], ...}``), which :func:`is_complete` checks.

The PNG files, for L layers front to back (the last is the background):

- two layers (the default): ``foreground.png`` (RGBA, alpha = mask), ``background.png``,
  ``mask.png`` (the foreground's share) and ``recomposed.png``, as in every earlier version;
- L > 2 layers: ``layer1.png`` … ``layer{L-1}.png`` (RGBA, front first, each with its stacking
  alpha: the share of what the layers in front of it leave), ``background.png`` (opaque),
  ``mask1.png`` … ``mask{L-1}.png`` (each front layer's visible share; the background's is what
  they leave) and ``recomposed.png``.

Stacked "over" each other from the background up, the RGBA layers give the input (within 1/255).
With two layers plain rounding to 8 bits guarantees that; with more, the rounding errors of the
alphas would add up, so each layer's colour is rounded so that the stack so far matches the exact
composite (:func:`stack_pixels`). Inside ``layers.ora`` and ``layers.psd`` the layers are named by
their prompts (``foreground`` / ``layerN`` / ``background`` where a prompt is missing).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from ..io import check_pixels, tensor_to_image, write_atomically
from .layerfiles import checkerboard, contact_sheet, write_ora, write_psd

NAME_LIMIT = 255
"""The longest layer name a PSD holds (a Pascal string); longer prompts are cut."""


class LayerStack(Protocol):
    """What the writers read of a decomposition; :class:`~layerdecomp.layers.result.Layers` is one.

    Declared here, so that this module does not import the result whose ``save()`` and
    ``to_pil()`` call it. The tensors are front to back, the background last.
    """

    @property
    def images(self) -> torch.Tensor:
        """(L, 3, H, W) in [−1, 1]."""
        ...

    @property
    def masks(self) -> torch.Tensor:
        """(L, 1, H, W) visible shares summing to 1 over the layers."""
        ...

    @property
    def prompts(self) -> Sequence[str]:
        """The L prompts, or none."""
        ...

    @property
    def count(self) -> int:
        """L."""
        ...

    @property
    def alphas(self) -> torch.Tensor:
        """(L, 1, H, W) stacking alphas; the background's is 1."""
        ...

    @property
    def recomposition(self) -> torch.Tensor:
        """(1, 3, H, W): Σ_l m_l·x_l."""
        ...

    @property
    def foreground(self) -> torch.Tensor:
        """The front layer (1, 3, H, W)."""
        ...

    @property
    def background(self) -> torch.Tensor:
        """The back layer (1, 3, H, W)."""
        ...

    @property
    def mask(self) -> torch.Tensor:
        """The front layer's share (1, 1, H, W)."""
        ...


@dataclass(frozen=True)
class LayerImages(Mapping[str, Image.Image]):
    """A decomposition's 8-bit images, by the stem of their PNG file (``images["mask"]``).

    Attributes:
        images: every PNG's image by stem (``foreground``/``layerN``, ``background``,
            ``mask``/``maskN``, ``recomposed``).
        stack: ``(stem, name)`` of each layer image, front to back, the background last; the name
            is its prompt.
        masks: ``(stem, name)`` of each front layer's share image.
    """

    images: dict[str, Image.Image]
    stack: tuple[tuple[str, str], ...]
    masks: tuple[tuple[str, str], ...]

    def __getitem__(self, stem: str) -> Image.Image:
        return self.images[stem]

    def __iter__(self) -> Iterator[str]:
        return iter(self.images)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> tuple[int, int]:
        return self.images["background"].size


def png_stems(count: int) -> tuple[str, ...]:
    """The stems of the PNG files for ``count`` layers (see the module's docstring)."""
    if count == 2:
        return ("foreground", "background", "mask", "recomposed")
    front = range(1, count)
    return (*(f"layer{i}" for i in front), "background", *(f"mask{i}" for i in front), "recomposed")


def layer_names(layers: LayerStack) -> list[str]:
    """The layers' names for editors: their prompts (one line, at most :data:`NAME_LIMIT`)."""
    count = layers.count
    defaults = ["foreground"] if count == 2 else [f"layer{i}" for i in range(1, count)]
    defaults.append("background")
    prompts = list(layers.prompts) or [""] * count
    names = [" ".join(str(p).split())[:NAME_LIMIT] for p in prompts]
    return [name or default for name, default in zip(names, defaults, strict=True)]


def stack_pixels(layers: LayerStack) -> tuple[np.ndarray, np.ndarray]:
    """8-bit RGBA (L, H, W, 4) of the layers with stacking alphas, and the shares (L, H, W).

    Alphas and the background are rounded; from the back to the front, each layer's colour is
    then the one whose rounded value makes the quantised stack so far closest to the exact
    composite ``c_l = a_l·x_l + (1 − a_l)·c_{l+1}`` (the colour of a transparent pixel is the
    layer's own). The stack of all of them is the recomposition to within half a step plus what
    clipping to [0, 1] leaves. Where an alpha is small a colour may move far from the layer's
    own, but ``a·(colour − own)``, what any backdrop sees of the change, stays about 1/255.
    """
    x = ((check_pixels(layers.images.detach(), "the layers").double().cpu() + 1) / 2).clamp(0, 1)
    shares = check_pixels(layers.masks.detach(), "the masks").double().cpu().clamp(0, 1)
    alphas = layers.alphas.detach().double().cpu()
    steps = torch.round(alphas * 255) / 255
    colours = torch.empty_like(x)
    colours[-1] = quantised = torch.round(x[-1] * 255) / 255
    exact = x[-1]
    for layer in range(layers.count - 2, -1, -1):
        a, q = alphas[layer], steps[layer]
        exact = a * x[layer] + (1 - a) * exact
        wanted = (exact - (1 - q) * quantised) / q.clamp_min(1 / 255)
        colour = torch.round(torch.where(q > 0, wanted, x[layer]).clamp(0, 1) * 255) / 255
        colours[layer] = colour
        quantised = q * colour + (1 - q) * quantised
    rgba = torch.cat([colours, steps], 1).permute(0, 2, 3, 1) * 255
    return (
        rgba.round().to(torch.uint8).numpy(),
        (shares[:, 0] * 255).round().to(torch.uint8).numpy(),
    )


def _gray(mask) -> Image.Image:
    return tensor_to_image(mask.expand(-1, 3, -1, -1) * 2 - 1).convert("L")


def layer_images(layers: LayerStack) -> LayerImages:
    """The output images (see the module's docstring for their names); refuses NaN/Inf."""
    names = layer_names(layers)
    stems = png_stems(layers.count)
    recomposed = tensor_to_image(layers.recomposition)
    if layers.count == 2:  # exactly the files of the two-layer versions
        alpha = _gray(layers.mask)
        foreground = tensor_to_image(layers.foreground).convert("RGBA")
        foreground.putalpha(alpha)
        images = [foreground, tensor_to_image(layers.background), alpha, recomposed]
        return LayerImages(
            dict(zip(stems, images, strict=True)),
            (("foreground", names[0]), ("background", names[1])),
            (("mask", "mask"),),
        )
    rgba, shares = stack_pixels(layers)
    front = layers.count - 1
    images = {f"layer{i + 1}": Image.fromarray(rgba[i], "RGBA") for i in range(front)}
    images["background"] = Image.fromarray(np.ascontiguousarray(rgba[-1, ..., :3]), "RGB")
    images.update({f"mask{i + 1}": Image.fromarray(shares[i], "L") for i in range(front)})
    images["recomposed"] = recomposed
    stack = (*((f"layer{i + 1}", names[i]) for i in range(front)), ("background", names[-1]))
    masks = tuple((f"mask{i + 1}", f"mask{i + 1}") for i in range(front))
    return LayerImages(images, stack, masks)


FileWriter = Callable[[Path, Image.Image, LayerImages], None]
"""``write(path, input_image, images)``: writes one file of a format to ``path``."""


def _png(stem: str) -> FileWriter:
    return lambda path, input_image, images: images[stem].save(path, format="PNG")


def _pngs(count: int) -> dict[str, FileWriter]:
    return {f"{stem}.png": _png(stem) for stem in png_stems(count)}


def _sheet(path: Path, input_image: Image.Image, images: LayerImages) -> None:
    contact_sheet(input_image, images).save(path, format="PNG")


def _ora(path: Path, input_image: Image.Image, images: LayerImages) -> None:
    write_ora(path, images)


def _psd(path: Path, input_image: Image.Image, images: LayerImages) -> None:
    write_psd(path, images)


@dataclass(frozen=True)
class Writer:
    """An output format: the files it makes (names in the run folder) and how each is written.

    ``files`` are the files of a two-layer run (what the web page lists); a format whose file
    names depend on the layer count gives ``layered(count)``, the files for ``count`` layers.
    """

    files: dict[str, FileWriter]
    description: str = ""
    layered: Callable[[int], dict[str, FileWriter]] | None = None

    def outputs(self, count: int = 2) -> dict[str, FileWriter]:
        """The files this format writes for ``count`` layers."""
        return self.files if self.layered is None or count == 2 else self.layered(count)


WRITERS: dict[str, Writer] = {
    "png": Writer(
        _pngs(2),
        "foreground (RGBA, alpha = mask), background, mask and recomposition PNGs "
        "(with more layers: layer1…, background, mask1…, recomposition)",
        layered=_pngs,
    ),
    "sheet": Writer(
        {"sheet.png": _sheet}, "input | each layer's mask and layer | background | recomposition"
    ),
    "ora": Writer({"layers.ora": _ora}, "OpenRaster layers for GIMP and Krita"),
    "psd": Writer({"layers.psd": _psd}, "Photoshop layers, named by their prompts"),
}
"""The output formats by name; every format is written by default."""

METADATA = "run.json"
OUTPUTS = (*(f for w in WRITERS.values() for f in w.files), METADATA)
"""Every file of a two-layer run folder with the default formats, ``run.json`` last."""


def output_files(count: int, formats: Sequence[str] | None = None) -> dict[str, list[str]]:
    """The files each of ``formats`` (default: all of :data:`WRITERS`) writes for ``count``
    layers, as ``run.json`` records them under ``"files"``."""
    return {name: list(WRITERS[name].outputs(count)) for name in (formats or WRITERS)}


def _recorded(directory: Path) -> dict[str, list[str]] | None:
    """The files ``run.json`` lists; folders written before it listed them had two layers."""
    try:
        metadata = json.loads((directory / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = metadata.get("files") if isinstance(metadata, dict) else None
    if files is None:
        return {name: list(writer.files) for name, writer in WRITERS.items()}
    if not isinstance(files, dict):
        return None
    return {k: v for k, v in files.items() if isinstance(v, list)}


def is_complete(directory: str | os.PathLike, formats: Sequence[str] | None = None) -> bool:
    """True when ``directory`` holds a finished run's ``run.json`` and every file it lists for
    ``formats`` (default: all of :data:`WRITERS`), whatever the number of layers."""
    directory = Path(directory)
    files = _recorded(directory)
    if files is None:
        return False
    for name in formats or WRITERS:
        listed = files.get(name)
        if listed is None:
            return False
        for file in listed:
            if not isinstance(file, str) or Path(file).name != file:
                return False
            if not (directory / file).is_file():
                return False
    return True


def save_decomposition(
    directory: str | os.PathLike,
    input_image: Image.Image,
    layers: LayerStack,
    metadata: dict[str, Any],
    formats: Sequence[str] | None = None,
) -> Path:
    """Write the chosen ``formats`` (default: all of :data:`WRITERS`) and ``run.json``.

    ``run.json`` is ``metadata`` with ``"files"``, the files of each format, added. ``directory``
    is created if missing (and removed again if nothing could be written).

    Raises:
        ValueError: an unknown format name.
        InputError: NaN/Inf in the layers, or a file that cannot be written.
    """
    formats = list(dict.fromkeys(formats or WRITERS))
    unknown = [f for f in formats if f not in WRITERS]
    if unknown:
        raise ValueError(f"formats: unknown {unknown} (known: {', '.join(WRITERS)})")
    directory = Path(directory)
    images = layer_images(layers)  # refuses NaN/Inf before anything is created
    record = {**metadata, "files": output_files(layers.count, formats)}
    text = json.dumps(record, indent=2, default=str) + "\n"
    jobs = [
        (directory / name, lambda p, w=write: w(p, input_image, images))
        for fmt in formats
        for name, write in WRITERS[fmt].outputs(layers.count).items()
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
    "METADATA",
    "OUTPUTS",
    "WRITERS",
    "LayerImages",
    "LayerStack",
    "Writer",
    "checkerboard",
    "contact_sheet",
    "is_complete",
    "layer_images",
    "layer_names",
    "output_files",
    "png_stems",
    "save_decomposition",
    "stack_pixels",
    "write_ora",
    "write_psd",
]
