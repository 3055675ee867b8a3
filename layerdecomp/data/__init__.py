"""Synthetic data: emoji-over-texture composites with exact ground truth.

See :mod:`layerdecomp.data.composites` (``python -m layerdecomp.data.composites``) and, for
two foreground objects, :mod:`layerdecomp.data.pairs`. Names are
imported lazily, so running that module with ``-m`` does not import it twice.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "composites": (
        "SPLITS",
        "Composite",
        "CompositeDataset",
        "make_composite",
        "split_emoji",
        "write_composites",
    ),
    "pairs": ("PairComposite", "make_pair", "write_pairs"),
    "emoji": ("EMOJI", "NOVEL_EMOJI", "TRAIN_EMOJI", "emoji_name", "emoji_prompt"),
    "textures": ("COLOURS", "FAMILIES", "make_texture", "texture_caption"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
