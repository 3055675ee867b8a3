"""Composites with two foreground objects (front and back) over a texture, for N-layer work.

Each object has its own full alpha (as if nothing covered it) and caption; the front object is
pasted over the back one, which is pasted over the background, and the two overlap partially.
The visible share of each layer follows from the order: ``front``, ``back * (1 - front)`` and
``(1 - back) * (1 - front)`` for the background; they sum to one at every pixel.

Run as a module to write samples to a folder::

    python -m layerdecomp.data.pairs --split heldout --n 8 --out DIR
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from PIL import Image

from layerdecomp.data.composites import (
    SCALE_RANGE,
    SPLITS,
    Split,
    sample_options,
    split_emoji,
    write_captions,
)
from layerdecomp.data.emoji import emoji_prompt, emoji_rgba
from layerdecomp.data.textures import COLOURS, FAMILIES, make_texture, texture_caption

PAIR_STREAM = 2
"""Mixed into every pair's seed after the split's id, so pairs never share a seed with singles."""

OVERLAP_RANGE = (0.05, 0.5)
"""The back object's covered share of its own alpha mass must lie in this range."""

PAIR_SCALE = (SCALE_RANGE[0], 0.55)
"""Each object's longer side as a fraction of the image side (smaller than singles: two fit)."""


@dataclass(frozen=True)
class PairComposite:
    """Two objects over a background; arrays are ``(size, size, ...)``, objects front to back.

    Attributes:
        image: uint8 RGB composite.
        alphas: float32 ``(2, size, size)`` full alpha of each object (front, back).
        fgs: uint8 ``(2, size, size, 4)`` RGBA of each object (colour zero where alpha is zero).
        bg: uint8 RGB background, complete.
        captions_fg: The objects' captions, front first, e.g. ``("a cat face", "a red apple")``.
        caption_bg: The background's caption.
        caption: All of them, e.g. ``"a cat face and a red apple on blue stripes"``.
        emoji: The two emoji, front first.
        texture: The background's texture family.
        colour: The background's named colour.
        overlap: The share of the back object's alpha mass that the front one covers.
        index: Sample index within the split.
        split: The split name.
        seed: The base seed.
    """

    image: np.ndarray
    alphas: np.ndarray
    fgs: np.ndarray
    bg: np.ndarray
    captions_fg: tuple[str, str]
    caption_bg: str
    caption: str
    emoji: tuple[str, str]
    texture: str
    colour: str
    overlap: float
    index: int
    split: str
    seed: int

    @property
    def visible(self) -> np.ndarray:
        """float32 ``(3, size, size)``: the visible share of front, back and background."""
        front, back = self.alphas.astype(np.float64)
        shares = np.stack([front, back * (1 - front), (1 - back) * (1 - front)])
        return shares.astype(np.float32)


def _place(rng: np.random.Generator, sprite: np.ndarray, size: int) -> np.ndarray:
    """Paste ``sprite`` at a random position fully inside a transparent ``size²`` canvas."""
    h, w = sprite.shape[:2]
    left = int(rng.integers(0, size - w + 1))
    top = int(rng.integers(0, size - h + 1))
    canvas = np.zeros((size, size, 4), np.uint8)
    canvas[top : top + h, left : left + w] = sprite
    return canvas


def make_pair(
    index: int, split: Split = "heldout", size: int = 64, seed: int = 0, tries: int = 100
) -> PairComposite:
    """Generate one two-object composite, deterministically from ``(seed, split, index)``.

    Positions are redrawn (from the same stream) until the overlap lies in
    :data:`OVERLAP_RANGE`; the two emoji differ.

    Args:
        index: Sample index (non-negative).
        split: ``"train"``, ``"heldout"`` or ``"novel"`` (as for single composites).
        size: Side length in pixels (at least 16).
        seed: Base seed.
        tries: Placements tried before giving up.

    Returns:
        The :class:`PairComposite`.

    Raises:
        ValueError: For a bad index or size, or when no placement overlaps as required.
    """
    pool = split_emoji(split)
    if index < 0 or size < 16:
        raise ValueError(f"need index >= 0 and size >= 16, got index={index}, size={size}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], index, PAIR_STREAM]))
    first, second = (pool[int(i)] for i in rng.choice(len(pool), size=2, replace=False))
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    bg = make_texture(rng, size, family, colour)
    sprites = [
        emoji_rgba(e, max(1, round(rng.uniform(*PAIR_SCALE) * size))) for e in (first, second)
    ]
    for _ in range(tries):
        fgs = np.stack([_place(rng, sprite, size) for sprite in sprites])
        front, back = fgs[..., 3].astype(np.float64) / 255.0
        overlap = float((front * back).sum() / back.sum())
        if OVERLAP_RANGE[0] <= overlap <= OVERLAP_RANGE[1]:
            break
    else:
        raise ValueError(f"no placement with overlap in {OVERLAP_RANGE} after {tries} tries")
    under = back[..., None] * fgs[1, ..., :3] + (1 - back[..., None]) * bg
    image = front[..., None] * fgs[0, ..., :3] + (1 - front[..., None]) * under
    captions_fg = (emoji_prompt(first), emoji_prompt(second))
    caption_bg = texture_caption(family, colour)
    return PairComposite(
        image=np.round(image).astype(np.uint8),
        alphas=(fgs[..., 3].astype(np.float32) / 255.0),
        fgs=fgs,
        bg=bg,
        captions_fg=captions_fg,
        caption_bg=caption_bg,
        caption=f"{captions_fg[0]} and {captions_fg[1]} on {caption_bg}",
        emoji=(first, second),
        texture=family,
        colour=colour,
        overlap=overlap,
        index=index,
        split=split,
        seed=seed,
    )


def write_pairs(
    out: str | Path,
    split: Split = "heldout",
    n: int = 8,
    size: int = 64,
    seed: int = 0,
    start: int = 0,
) -> list[dict]:
    """Write pairs as PNGs (composite, each object's RGBA, background) plus ``captions.json``.

    Args:
        out: Output folder (created).
        split: The split.
        n: Number of samples.
        size: Side length in pixels.
        seed: Base seed.
        start: Index of the first sample.

    Returns:
        The records written to ``captions.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(start, start + n):
        p = make_pair(index, split, size, seed)
        stem = f"{split}_pair_{index:05d}"
        record = {
            "index": index,
            "image": f"{stem}.png",
            "captions_fg": list(p.captions_fg),
            "caption_bg": p.caption_bg,
            "caption": p.caption,
            "emoji": list(p.emoji),
            "texture": p.texture,
            "colour": p.colour,
            "overlap": round(p.overlap, 4),
            "fg_images": [f"{stem}_fg{k}.png" for k in range(2)],
            "bg_image": f"{stem}_bg.png",
        }
        Image.fromarray(p.image).save(out / record["image"])
        for k, name in enumerate(record["fg_images"]):
            Image.fromarray(p.fgs[k]).save(out / name)
        Image.fromarray(p.bg).save(out / record["bg_image"])
        records.append(record)
    write_captions(out, records, split=split, size=size, seed=seed, start=start)
    return records


@click.command()
@sample_options("heldout", 16)
def main(split: str, n: int, out: str, size: int, seed: int, start: int) -> None:
    """Write N two-object composites of SPLIT (PNGs + captions.json) into OUT."""
    write_pairs(out, split, n, size, seed, start)  # type: ignore[arg-type]
    click.echo(f"wrote {n} {split} two-object composites to {out}")


if __name__ == "__main__":
    main()
