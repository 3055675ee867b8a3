"""The images a command's IMAGE argument names: one file, or the sorted files of a folder or glob.

Every process of a launched run builds the same list (sorted paths), which the shards split.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from ..errors import InputError
from .manifest import MANIFEST

_GLOB_CHARS = set("*?[")


def _extensions() -> set[str]:
    return set(Image.registered_extensions())


def image_files(image: str) -> tuple[list[Path], bool]:
    """(files, many): the file IMAGE names (``many`` false), or the image files of the folder
    or glob it names, sorted (``many`` true; a folder's files of a Pillow image extension).

    Raises:
        InputError: nothing by that name, or a folder or glob with no image file.
    """
    path = Path(image)
    if path.is_file():
        return [path], False
    if path.is_dir():
        extensions = _extensions()
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in extensions)
        what = f"folder {image!r}"
    elif _GLOB_CHARS & set(image):
        files = sorted(Path(p) for p in glob.glob(image) if Path(p).is_file())
        what = f"pattern {image!r}"
    else:
        raise InputError(f"image {image!r}: no such file, folder or pattern")
    if not files:
        raise InputError(f"{what}: no image files")
    return files, True


def outputs_by_stem(
    image: str, files: list[Path], target: Callable[[Path], Path]
) -> list[tuple[Path, Path]]:
    """(file, ``target(file)``) for each file; two files of one stem, or a target that would be
    the manifest, are refused.

    Raises:
        InputError: naming both files (or the file and the manifest).
    """
    pairs, seen = [], {}
    for file in files:
        out = target(file)
        if out.name == MANIFEST:
            raise InputError(f"{str(file)!r} would write to {str(out)!r}, the run's manifest")
        if out in seen:
            raise InputError(
                f"{image!r}: {str(seen[out])!r} and {str(file)!r} would both write to {str(out)!r}"
            )
        seen[out] = file
        pairs.append((file, out))
    return pairs


def masks_for(files: list[Path], mask: Path) -> dict[Path, Path]:
    """The mask of each image: ``mask`` itself for every one, or, when ``mask`` is a folder, the
    file in it with the image's stem (any Pillow image extension).

    Raises:
        InputError: a mask folder with no file, or two, of an image's stem.
    """
    if not mask.is_dir():
        return {file: mask for file in files}
    extensions = _extensions()
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(mask.iterdir()):
        if path.is_file() and path.suffix.lower() in extensions:
            by_stem.setdefault(path.stem, []).append(path)
    found = {}
    for file in files:
        candidates = by_stem.get(file.stem, [])
        if len(candidates) != 1:
            many = ", ".join(repr(p.name) for p in candidates)
            reason = f"two masks of that name ({many})" if candidates else "no mask of that name"
            raise InputError(f"mask folder {str(mask)!r}: {reason} for image {str(file)!r}")
        found[file] = candidates[0]
    return found


__all__ = ["image_files", "masks_for", "outputs_by_stem"]
