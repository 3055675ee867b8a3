"""Procedural backgrounds: six texture families in eight named colours, random parameters.

Every texture is two tones of one named colour (the colour itself and a lighter or darker shade),
computed with numpy on a 4x supersampled grid and box-filtered, so edges are antialiased.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

Family = Literal["stripes", "checks", "dots", "gradient", "noise", "plain"]

FAMILIES: tuple[Family, ...] = ("stripes", "checks", "dots", "gradient", "noise", "plain")
"""The texture families, in a fixed order."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 210, 40),
    "green": (50, 165, 70),
    "blue": (40, 90, 220),
    "purple": (130, 60, 190),
    "pink": (240, 130, 180),
    "gray": (128, 128, 128),
}
"""The named colours and their base RGB (jittered per sample)."""

_SUPERSAMPLE = 4


def texture_caption(family: Family, colour: str) -> str:
    """The background caption: ``"blue stripes"``, or ``"plain blue"`` for the plain family.

    Args:
        family: One of :data:`FAMILIES`.
        colour: One of :data:`COLOURS`.

    Returns:
        The caption text.
    """
    return f"plain {colour}" if family == "plain" else f"{colour} {family}"


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    n = size * _SUPERSAMPLE
    coords = (np.arange(n, dtype=np.float64) + 0.5) / _SUPERSAMPLE
    return np.meshgrid(coords, coords, indexing="xy")


def _downsample(mask: np.ndarray, size: int) -> np.ndarray:
    return mask.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))


def _rotated(rng: np.random.Generator, size: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = _grid(size)
    x, y = x - size / 2, y - size / 2
    c, s = np.cos(angle), np.sin(angle)
    return x * c + y * s + rng.uniform(0, size), -x * s + y * c + rng.uniform(0, size)


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    u, _ = _rotated(rng, size, rng.uniform(0, np.pi))
    period = rng.uniform(size / 10, size / 4)
    return _downsample((np.mod(u / period, 1.0) < rng.uniform(0.35, 0.65)).astype(float), size)


def _checks(rng: np.random.Generator, size: int) -> np.ndarray:
    angle = rng.choice([0.0, np.pi / 4]) + rng.uniform(-0.1, 0.1)
    u, v = _rotated(rng, size, angle)
    period = rng.uniform(size / 10, size / 4)
    mask = np.mod(np.floor(u / period) + np.floor(v / period), 2)
    return _downsample(mask, size)


def _dots(rng: np.random.Generator, size: int) -> np.ndarray:
    u, v = _rotated(rng, size, rng.uniform(0, np.pi / 2))
    period = rng.uniform(size / 8, size / 4)
    radius = rng.uniform(0.2, 0.38) * period
    du = np.mod(u, period) - period / 2
    dv = np.mod(v, period) - period / 2
    return 1.0 - _downsample((du**2 + dv**2 < radius**2).astype(float), size)


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    x, y = _grid(size)
    if rng.random() < 0.7:
        angle = rng.uniform(0, 2 * np.pi)
        t = ((x - size / 2) * np.cos(angle) + (y - size / 2) * np.sin(angle)) / size + 0.5
    else:
        cx, cy = rng.uniform(0, size, 2)
        t = np.hypot(x - cx, y - cy) / (size * rng.uniform(0.7, 1.2))
    return _downsample(np.clip(t, 0, 1) ** rng.uniform(0.7, 1.4), size)


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    cells = int(rng.integers(3, 9))
    coarse = Image.fromarray(rng.random((cells, cells)).astype(np.float32), mode="F")
    smooth = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)
    smooth = (smooth - smooth.min()) / max(np.ptp(smooth), 1e-6)
    grain = rng.random((size, size))
    mix = rng.uniform(0.15, 0.45)
    return (1 - mix) * smooth + mix * grain


def make_texture(rng: np.random.Generator, size: int, family: Family, colour: str) -> np.ndarray:
    """A random background of one family and colour.

    Args:
        rng: The per-sample generator (all randomness comes from it).
        size: Side length in pixels.
        family: One of :data:`FAMILIES`.
        colour: One of :data:`COLOURS`.

    Returns:
        A ``(size, size, 3)`` uint8 RGB array.

    Raises:
        ValueError: For an unknown family or colour.
    """
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; known: {', '.join(COLOURS)}")
    makers = {
        "stripes": _stripes,
        "checks": _checks,
        "dots": _dots,
        "gradient": _gradient,
        "noise": _noise,
    }
    if family not in makers and family != "plain":
        raise ValueError(f"unknown texture family {family!r}; known: {', '.join(FAMILIES)}")
    base = np.clip(np.array(COLOURS[colour], float) + rng.uniform(-15, 15, 3), 0, 255)
    if rng.random() < 0.6:
        other = base + rng.uniform(0.45, 0.8) * (255 - base)  # lighter tint
    else:
        other = base * (1 - rng.uniform(0.35, 0.6))  # darker shade
    if family == "plain":
        return np.broadcast_to(np.round(base).astype(np.uint8), (size, size, 3)).copy()
    t = makers[family](rng, size)[..., None]
    return np.round(np.clip((1 - t) * base + t * other, 0, 255)).astype(np.uint8)
