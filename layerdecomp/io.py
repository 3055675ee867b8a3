"""Image and mask loading, validation and atomic writing (Pillow; no other image library).

Images of any mode (grayscale, 16-bit, RGBA, palette, CMYK) become RGB; EXIF orientation is
applied; Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is kept and enforced as an
error. Masks follow diffusers: white = region to fill, black = keep. Outputs are written to a
temporary file in the target directory and renamed, so a failure never leaves a partial file.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from solvers.errors import HALF_OVERFLOW

from .errors import InputError

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def open_image(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """Open, fully decode and EXIF-orient an image file, turning every failure into one line.

    Raises:
        InputError: missing, unreadable, not an image, truncated, or over Pillow's pixel limit.
    """
    path = Path(path)
    name = f"{what} {str(path)!r}"
    if not path.exists():
        raise InputError(f"{name}: no such file")
    if path.is_dir():
        raise InputError(f"{name}: is a directory, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as handle:
                handle.load()
                image = ImageOps.exif_transpose(handle) or handle.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(
            f"{name}: refused as a possible decompression bomb ({exc}); Pillow's limit is "
            f"{Image.MAX_IMAGE_PIXELS} pixels"
        ) from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image file Pillow can read") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{name}: cannot be decoded ({exc})") from None
    return image


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer grayscale to 8-bit ``L`` (Pillow's convert would clip)."""
    if image.mode in _SIXTEEN_BIT:
        return image.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if image.mode == "F":
        return image.point(lambda v: v * 255).convert("L")
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to RGB; transparency is dropped (the RGB under the alpha is kept)."""
    image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Load an image file as RGB (see :func:`open_image` for the errors)."""
    return to_rgb(open_image(path, "image"))


def load_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> Image.Image:
    """Load a mask as a binary ``L`` image: 255 = fill (white, ≥ 128), 0 = keep.

    Args:
        path: the mask file (any mode; colour masks are converted to luminance).
        size: the image's (width, height) the mask must match.

    Raises:
        InputError: as :func:`open_image`, a mask of another size, or an all-black mask.
    """
    mask = _to_8bit(open_image(path, "mask"))
    if mask.mode == "P":
        mask = mask.convert("RGBA")
    mask = mask.convert("L").point(lambda v: 255 if v >= 128 else 0)
    if size is not None and mask.size != tuple(size):
        raise InputError(
            f"mask {str(path)!r}: size {mask.size[0]}x{mask.size[1]} does not match the image's "
            f"{size[0]}x{size[1]}"
        )
    if mask.getextrema()[1] == 0:
        raise InputError(
            f"mask {str(path)!r}: all black, nothing to fill (white marks the region to fill)"
        )
    return mask


@lru_cache(maxsize=1)
def _processors():
    """diffusers' image processors: RGB in [−1, 1], and binary masks (≥ 128 → 1)."""
    from diffusers.image_processor import VaeImageProcessor

    image = VaeImageProcessor(do_resize=False, do_normalize=True)
    mask = VaeImageProcessor(
        do_resize=False, do_normalize=False, do_binarize=True, do_convert_grayscale=True
    )
    return image, mask


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image → (1, 3, H, W) float32 in [−1, 1] (diffusers' ``VaeImageProcessor``)."""
    return _processors()[0].preprocess(to_rgb(image)).float()


def mask_to_tensor(mask: Image.Image) -> torch.Tensor:
    """Mask image (white = fill) → (1, 1, H, W) float32: 1 where to fill, 0 where to keep."""
    gray = mask if mask.mode == "L" else mask.convert("L")
    return _processors()[1].preprocess(gray).float()


def tensor_to_image(tensor: torch.Tensor, what: str = "the output image") -> Image.Image:
    """(1, 3, H, W) or (3, H, W) in [−1, 1] → RGB image (rounded, clipped).

    Raises:
        InputError: NaN or Inf anywhere in ``tensor`` (see :func:`check_pixels`).
    """
    x = check_pixels(tensor.detach().float().cpu(), what)
    x = x if x.dim() == 4 else x.unsqueeze(0)
    return _processors()[0].postprocess(x[:1].clamp(-1, 1), output_type="pil")[0]


MIN_CELLS = 2
"""The fewest cells of the model's latent grid a side of the image it works on may have."""
MIN_INPUT_SIDE = 2
"""The fewest pixels a side of any input image may have (1 px says nothing of its content)."""


def check_image_size(
    size: tuple[int, int], factor: int, task: str, *, what: str = "image", scale: int = 1
) -> None:
    """Refuse an image too small for ``task`` to honestly work on, before any work: the model
    works on it at ``scale`` times its size (superres), and that must span ``MIN_CELLS`` cells of
    the latent grid (``factor`` pixels each: 8 for SD, 4 for ``mini``) per side. The one rule of
    the command line, the Python API and the server.

    Raises:
        InputError: naming the size and the smallest size ``task`` takes.
    """
    need = max(MIN_INPUT_SIDE, -(-MIN_CELLS * max(1, int(factor)) // max(1, int(scale))))
    width, height = size
    if min(width, height) < need:
        worked = f", {need * scale} px at x{scale}" if scale > 1 else ""
        raise InputError(
            f"{what}: {width}x{height} px is too small for {task}; the smallest it takes is "
            f"{need}x{need} px ({MIN_CELLS} cells of the model's latent grid per side{worked})"
        )


# ---------------------------------------------------------------------- outputs


def check_output_path(path: str | os.PathLike) -> Path:
    """Validate an output image path before any work: a format Pillow writes, in a folder that
    exists or can be made (it is made when the output is written, as ``decompose`` makes its
    output folder), and can be written.

    Raises:
        InputError: a file where a folder would go, a directory as path, an unknown extension,
            or a place that cannot be written.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"output {str(path)!r}: {str(existing)!r} is a file, not a folder")
    if path.is_dir():
        raise InputError(f"output {str(path)!r}: is a directory")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE or path.suffix.lower() == ".json":
        raise InputError(f"output {str(path)!r}: unknown image extension (use .png)")
    _check_writable(path, existing)
    return path


def check_output_folder(path: str | os.PathLike) -> Path:
    """Validate an output folder before any work: a folder, or creatable where it would go, and
    writable. Nothing is left behind (a probe file or folder is removed again).

    Raises:
        InputError: a file in the way, or a place that cannot be created or written to.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file, not a folder" if existing == path else f"{str(existing)!r} is a file"
        raise InputError(f"output {str(path)!r}: {what}")
    _check_writable(path, existing)
    return path


def _check_writable(path: Path, folder: Path) -> None:
    """Create and remove a probe file in ``folder`` (the output's folder, or the nearest one that
    exists), so that a place that cannot be written fails before the work, in words."""
    try:
        handle, name = tempfile.mkstemp(prefix=".layerdecomp-probe-", dir=folder)
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        raise InputError(
            f"output {str(path)!r}: cannot be written in {str(folder)!r} ({os_reason(exc)})"
        ) from None


def os_reason(exc: OSError) -> str:
    """An operating-system error in words (``permission denied``), without its class or number."""
    reason = exc.strerror or str(exc) or "failed"
    return reason[0].lower() + reason[1:]


def write_atomically(files: Sequence[tuple[Path, Callable[[Path], None]]]) -> None:
    """Write several files so that none is ever seen half-written: the one atomic writer.

    Each ``write(temp)`` writes a temporary file in its target's directory; once every one has
    succeeded they are renamed into place in the given order (put the file that marks a complete
    run, such as its metadata JSON, last). On any failure the temporary files are removed and the
    error is raised as an :class:`InputError` naming the target.
    """
    temps: list[tuple[Path, Path]] = []
    target = None
    try:
        umask = os.umask(0)
        os.umask(umask)
        for target, write in files:
            handle, name = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
            )
            os.close(handle)
            temp = Path(name)
            temps.append((temp, target))
            temp.chmod(0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
            write(temp)
        for temp, target in temps:
            os.replace(temp, target)
    except OSError as exc:
        where = str(target) if target is not None else "output"
        raise InputError(f"output {where!r}: cannot be written ({os_reason(exc)})") from None
    finally:
        for temp, _ in temps:
            temp.unlink(missing_ok=True)


def check_pixels(tensor: torch.Tensor, what: str) -> torch.Tensor:
    """Refuse NaN or Inf before it becomes pixels: uint8 would turn it into plausible colours.

    Raises:
        InputError: naming ``what`` and the likely causes.
    """
    if not bool(torch.isfinite(tensor).all()):
        raise InputError(
            f"{what} holds NaN or Inf values, nothing was written ({HALF_OVERFLOW}; or a "
            "constraint that returns NaN)"
        )
    return tensor


def write_outputs(image: Image.Image, path: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write ``image`` to ``path`` and ``metadata`` to ``path`` with ``.json``, atomically.

    The JSON is renamed into place last. Returns the JSON path.
    """
    path = Path(path)
    json_path = path.with_suffix(".json")
    fmt = Image.registered_extensions()[path.suffix.lower()]
    text = json.dumps(metadata, indent=2, default=str) + "\n"
    write_atomically(
        [
            (path, lambda p: image.save(p, format=fmt)),
            (json_path, lambda p: p.write_text(text, encoding="utf-8")),
        ]
    )
    return json_path


__all__ = [
    "MIN_CELLS",
    "check_image_size",
    "check_pixels",
    "check_output_folder",
    "check_output_path",
    "image_to_tensor",
    "load_image",
    "load_mask",
    "mask_to_tensor",
    "open_image",
    "os_reason",
    "tensor_to_image",
    "to_rgb",
    "write_atomically",
    "write_outputs",
]
