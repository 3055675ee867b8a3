"""Synthetic foreground/background composites with exact ground truth (the "mini" model's data).

A colour emoji (real alpha) is pasted at a random scale and position over a procedural texture.
Each sample carries the composite, its alpha, the foreground RGBA, the full background and
captions for the foreground, the background, both, and the empty caption used for guidance.

Run as a module to write samples to a folder::

    python -m layerdecomp.data.composites --split train --n 8 --out DIR
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click
import numpy as np
import torch
from PIL import Image

from layerdecomp.data.emoji import EMOJI, NOVEL_EMOJI, TRAIN_EMOJI, emoji_name, emoji_prompt
from layerdecomp.data.emoji import emoji_rgba as _emoji_rgba
from layerdecomp.data.textures import COLOURS, FAMILIES, make_texture, texture_caption

Split = Literal["train", "heldout", "novel"]

SPLITS: dict[str, int] = {"train": 0, "heldout": 1, "novel": 2}
"""Split names and the stream id mixed into every sample's seed (so the splits never share one)."""

SCALE_RANGE = (0.25, 0.70)
"""The emoji's longer side as a fraction of the image side."""

MAX_OUTSIDE = 0.1
"""At most this fraction of the emoji's width (and height) may fall outside the image."""


@dataclass(frozen=True)
class Composite:
    """One composite and its ground truth; all arrays are ``(size, size, ...)``.

    Attributes:
        image: uint8 RGB composite, ``round(alpha * fg + (1 - alpha) * bg)``.
        alpha: float32 alpha in [0, 1] (exactly ``fg[..., 3] / 255``).
        fg: uint8 RGBA foreground layer (colour zero where alpha is zero).
        bg: uint8 RGB background, complete (also behind the foreground).
        caption_fg: Foreground caption, e.g. ``"a cat face"``.
        caption_bg: Background caption, e.g. ``"blue stripes"``.
        caption: Both, e.g. ``"a cat face on blue stripes"``.
        emoji: The emoji character.
        texture: The background's texture family.
        colour: The background's named colour.
        scale: The emoji's longer side over the image side.
        box: The emoji's box ``(left, top, right, bottom)`` in pixels (may exceed the image).
        index: Sample index within the split.
        split: The split name.
        seed: The base seed.
    """

    image: np.ndarray
    alpha: np.ndarray
    fg: np.ndarray
    bg: np.ndarray
    caption_fg: str
    caption_bg: str
    caption: str
    emoji: str
    texture: str
    colour: str
    scale: float
    box: tuple[int, int, int, int]
    index: int
    split: str
    seed: int

    @property
    def name(self) -> str:
        """The emoji's lower-case Unicode name, e.g. ``"cat face"``."""
        return emoji_name(self.emoji)

    @property
    def captions(self) -> dict[str, str]:
        """All four captions: ``fg``, ``bg``, ``both`` and ``empty`` (``""``)."""
        return {"fg": self.caption_fg, "bg": self.caption_bg, "both": self.caption, "empty": ""}


def split_emoji(split: Split) -> tuple[str, ...]:
    """The emoji a split draws from: training emoji for train/heldout, the held-out ones for novel.

    Args:
        split: ``"train"``, ``"heldout"`` or ``"novel"``.

    Returns:
        The emoji, in the fixed order of :data:`~layerdecomp.data.emoji.EMOJI`.

    Raises:
        ValueError: For an unknown split.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if split == "novel":
        return tuple(e for e in EMOJI if e in NOVEL_EMOJI)
    return TRAIN_EMOJI


def make_composite(index: int, split: Split = "train", size: int = 64, seed: int = 0) -> Composite:
    """Generate one composite, deterministically from ``(seed, split, index)``.

    Args:
        index: Sample index (non-negative).
        split: ``"train"``, ``"heldout"`` (new arrangements of the training emoji, disjoint
            seeds) or ``"novel"`` (emoji never used in training).
        size: Side length in pixels.
        seed: Base seed.

    Returns:
        The :class:`Composite`.
    """
    pool = split_emoji(split)
    if index < 0 or size < 8:
        raise ValueError(f"need index >= 0 and size >= 8, got index={index}, size={size}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], index]))
    emoji = pool[int(rng.integers(len(pool)))]
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    bg = make_texture(rng, size, family, colour)

    scale = float(rng.uniform(*SCALE_RANGE))
    sprite = _emoji_rgba(emoji, max(1, round(scale * size)))
    h, w = sprite.shape[:2]
    left = int(rng.integers(-int(MAX_OUTSIDE * w), size - w + int(MAX_OUTSIDE * w) + 1))
    top = int(rng.integers(-int(MAX_OUTSIDE * h), size - h + int(MAX_OUTSIDE * h) + 1))
    fg = np.zeros((size, size, 4), np.uint8)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + w, size), min(top + h, size)
    fg[y0:y1, x0:x1] = sprite[y0 - top : y1 - top, x0 - left : x1 - left]

    a = fg[..., 3:].astype(np.float64) / 255.0
    image = np.round(a * fg[..., :3] + (1.0 - a) * bg).astype(np.uint8)
    caption_fg, caption_bg = emoji_prompt(emoji), texture_caption(family, colour)
    return Composite(
        image=image,
        alpha=(fg[..., 3].astype(np.float32) / 255.0),
        fg=fg,
        bg=bg,
        caption_fg=caption_fg,
        caption_bg=caption_bg,
        caption=f"{caption_fg} on {caption_bg}",
        emoji=emoji,
        texture=family,
        colour=colour,
        scale=scale,
        box=(left, top, left + w, top + h),
        index=index,
        split=split,
        seed=seed,
    )


def _chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 255.0


class CompositeDataset(torch.utils.data.Dataset):
    """A torch view of ``make_composite(start + i, split, size, seed)`` for ``i < length``.

    Items are dicts of float tensors in [0, 1] (``image`` and ``bg``: ``(3, H, W)``; ``fg``:
    ``(4, H, W)`` RGBA; ``alpha``: ``(1, H, W)``) and caption strings (``caption_fg``,
    ``caption_bg``, ``caption``, ``name``).

    Args:
        split: The split.
        length: Number of samples.
        size: Side length in pixels.
        seed: Base seed.
        start: Index of the first sample.
    """

    def __init__(
        self,
        split: Split = "train",
        length: int = 1000,
        size: int = 64,
        seed: int = 0,
        start: int = 0,
    ) -> None:
        split_emoji(split)
        self.split, self.length, self.size, self.seed, self.start = split, length, size, seed, start

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | str]:
        if not 0 <= i < self.length:
            raise IndexError(i)
        c = make_composite(self.start + i, self.split, self.size, self.seed)
        return {
            "image": _chw(c.image),
            "alpha": torch.from_numpy(c.alpha)[None],
            "fg": _chw(c.fg),
            "bg": _chw(c.bg),
            "caption_fg": c.caption_fg,
            "caption_bg": c.caption_bg,
            "caption": c.caption,
            "name": c.name,
        }


def write_composites(
    out: str | Path,
    split: Split = "train",
    n: int = 8,
    size: int = 64,
    seed: int = 0,
    start: int = 0,
    layers: bool = True,
) -> list[dict]:
    """Write composites as PNGs plus ``captions.json`` (a list of records) into ``out``.

    Args:
        out: Output folder (created).
        split: The split.
        n: Number of samples.
        size: Side length in pixels.
        seed: Base seed.
        start: Index of the first sample.
        layers: Also write the ground truth: ``*_fg.png`` (RGBA), ``*_bg.png``, ``*_alpha.png``.

    Returns:
        The records written to ``captions.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(start, start + n):
        c = make_composite(index, split, size, seed)
        stem = f"{split}_{index:05d}"
        record = {
            "index": index,
            "image": f"{stem}.png",
            **c.captions,
            "name": c.name,
            "emoji": c.emoji,
            "texture": c.texture,
            "colour": c.colour,
            "scale": round(c.scale, 4),
            "box": list(c.box),
        }
        Image.fromarray(c.image).save(out / record["image"])
        if layers:
            for key, array in (("fg", c.fg), ("bg", c.bg), ("alpha", c.fg[..., 3])):
                record[f"{key}_image"] = f"{stem}_{key}.png"
                Image.fromarray(array).save(out / record[f"{key}_image"])
        records.append(record)
    write_captions(out, records, split=split, size=size, seed=seed, start=start)
    return records


def write_captions(out: Path, records: list[dict], **meta) -> None:
    """``out/captions.json``: the run's ``meta`` (split, size, seed, start) and its ``records``."""
    text = json.dumps({**meta, "samples": records}, indent=1, ensure_ascii=False) + "\n"
    (out / "captions.json").write_text(text)


def sample_options(split: str, min_size: int):
    """The click options of a module that writes samples: --split, --n, --out, --size, --seed,
    --start (``split`` the default split, ``min_size`` the smallest side)."""

    def decorate(function):
        for option in reversed(
            [
                click.option(
                    "--split", type=click.Choice(list(SPLITS)), default=split, show_default=True
                ),
                click.option("--n", "n", type=click.IntRange(min=1), default=8, show_default=True),
                click.option(
                    "--out", type=click.Path(file_okay=False), required=True, help="Output folder."
                ),
                click.option(
                    "--size", type=click.IntRange(min=min_size), default=64, show_default=True
                ),
                click.option("--seed", type=int, default=0, show_default=True),
                click.option("--start", type=click.IntRange(min=0), default=0, show_default=True),
            ]
        ):
            function = option(function)
        return function

    return decorate


@click.command()
@sample_options("train", 8)
@click.option(
    "--layers/--no-layers",
    default=True,
    show_default=True,
    help="Also write the fg/bg/alpha ground-truth PNGs.",
)
def main(split: str, n: int, out: str, size: int, seed: int, start: int, layers: bool) -> None:
    """Write N composites of SPLIT (PNGs + captions.json) into OUT."""
    write_composites(out, split, n, size, seed, start, layers)  # type: ignore[arg-type]
    click.echo(f"wrote {n} {split} composites to {out}")


if __name__ == "__main__":
    main()
