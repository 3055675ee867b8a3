"""Overlapping tiles at the model's native size, for images far larger than it.

A model trained at 64 px (``mini``) or 512 px (SD 1.5) costs far more than linearly beyond its
size (attention grows with the square of the tokens) and leaves its training distribution. With
tiles, a large output is cut into overlapping squares of the native side, each square is solved
on its own (many squares in one batch), and the results are blended with weights that fall off
linearly across each overlap, so seams do not show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

TILE_HELP = (
    "Work in overlapping tiles of this side in pixels (0 = one piece); the model's native size "
    "(64 for mini, 512 for SD 1.5) keeps a large image fast."
)

Box = tuple[int, int, int, int]
"""(left, top, right, bottom) in pixels, right/bottom exclusive."""


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: stride ``tile − overlap``, the last tile flush with the end."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    found = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(found))


def boxes(size: tuple[int, int], tile: int, overlap: int) -> list[Box]:
    """Tiles covering (width, height); a side shorter than ``tile`` gets one tile of its length."""
    width, height = size
    tw, th = min(tile, width), min(tile, height)
    return [
        (x, y, x + tw, y + th)
        for y in starts(height, th, overlap)
        for x in starts(width, tw, overlap)
    ]


def round_up(value: int, multiple: int) -> int:
    """The smallest positive multiple of ``multiple`` that is ≥ ``value`` (a work size, a tile
    side)."""
    return max(multiple, math.ceil(value / multiple) * multiple)


def work_size(size: tuple[int, int], side: int, multiple: int) -> tuple[int, int]:
    """(width, height) a model works at for an image of ``size`` resized (keeping its aspect)
    so that its longer side is ``side`` (0: its own size), each side rounded up to ``multiple``."""
    width, height = size
    scale = side / max(width, height) if side else 1.0
    return (
        round_up(max(1, round(width * scale)), multiple),
        round_up(max(1, round(height * scale)), multiple),
    )


def _ramp(length: int, overlap: int) -> torch.Tensor:
    if overlap <= 0:
        return torch.ones(length)
    x = torch.arange(length, dtype=torch.float32) + 0.5
    return torch.minimum(torch.ones(length), torch.minimum(x, length - x) / overlap)


def blend(tiles: torch.Tensor, placed: Sequence[Box], size: tuple[int, int], overlap: int):
    """Blend tiles (N, C, h, w) placed at ``placed`` into one (1, C, H, W) image.

    Each tile is weighted by a ramp that rises over ``overlap`` pixels from its edges; the sum is
    divided by the summed weights, so a pixel covered by one tile is that tile's pixel exactly.
    """
    width, height = size
    out = torch.zeros(1, tiles.shape[1], height, width, dtype=tiles.dtype)
    total = torch.zeros(1, 1, height, width, dtype=tiles.dtype)
    for tile, (left, top, right, bottom) in zip(tiles, placed, strict=True):
        weight = _ramp(bottom - top, overlap)[:, None] * _ramp(right - left, overlap)[None, :]
        out[0, :, top:bottom, left:right] += weight * tile
        total[0, 0, top:bottom, left:right] += weight
    return out / total.clamp_min(1e-12)


def in_batches(count: int, batch: int, run: Callable[[slice, int], torch.Tensor]) -> torch.Tensor:
    """``run(rows, index)`` for consecutive slices of at most ``batch`` rows; concatenated."""
    parts = [run(slice(i, min(count, i + batch)), k) for k, i in enumerate(range(0, count, batch))]
    return torch.cat(parts)


def far_above(work: tuple[int, int], native: tuple[int, int] | None) -> float:
    """How many times more pixels ``work`` has than the model's native size (1 if unknown)."""
    if not native:
        return 1.0
    return (work[0] * work[1]) / float(native[0] * native[1])


__all__ = ["Box", "blend", "boxes", "far_above", "in_batches", "round_up", "starts", "work_size"]
