"""Single-object composites rendered in torch, on any device, a whole batch at once (issue #24).

The same pictures as :func:`layerdecomp.data.composites.make_composite`, from tensors: the emoji
are resized once into an atlas (every emoji at every size a composite can use, by the CPU
renderer's own :func:`~layerdecomp.data.emoji.emoji_rgba`), the textures are the formulas of
:mod:`layerdecomp.data.textures` evaluated on a batch, and the sprites are pasted by one gather
and alpha-composited. :func:`draw` samples the parameters on the generator's device;
:func:`cpu_draws` reads those of ``make_composite(i)`` from its numpy stream, so the two renderers
can be compared picture by picture (equal up to float32 rounding, and up to the bicubic kernel for
the noise family: torch's a = -0.75, Pillow's -0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from layerdecomp.data.composites import MAX_OUTSIDE, SCALE_RANGE, SPLITS, Split, split_emoji
from layerdecomp.data.emoji import emoji_rgba
from layerdecomp.data.textures import _SUPERSAMPLE, COLOURS, FAMILIES

CELLS = 8
"""The largest coarse grid of the noise family (``integers(3, 9)``)."""


@dataclass
class Atlas:
    """Every emoji of a split at every longer side from ``lmin`` to ``lmax``, top-left aligned.

    Attributes:
        sprites: uint8 ``(K, M, M, 4)`` RGBA, ``K = len(pool) * (lmax - lmin + 1)``, zero padded.
        extent: ``(K, 2)`` each sprite's height and width.
        pool: The emoji, in the split's order.
        lmin: The smallest longer side.
        lmax: The largest.
    """

    sprites: torch.Tensor
    extent: torch.Tensor
    pool: tuple[str, ...]
    lmin: int
    lmax: int

    def index(self, emoji: torch.Tensor, longest: torch.Tensor) -> torch.Tensor:
        """The sprite of emoji number ``emoji`` with longer side ``longest``."""
        return emoji * (self.lmax - self.lmin + 1) + (longest - self.lmin)


def build_atlas(split: Split, size: int, device: torch.device | str = "cpu") -> Atlas:
    """The atlas of a split's emoji for composites of side ``size``."""
    pool = split_emoji(split)
    lmin = max(1, round(SCALE_RANGE[0] * size))
    lmax = max(1, round(SCALE_RANGE[1] * size))
    sprites = np.zeros((len(pool) * (lmax - lmin + 1), lmax, lmax, 4), np.uint8)
    extent = np.zeros((len(sprites), 2), np.int64)
    for i, emoji in enumerate(pool):
        for longest in range(lmin, lmax + 1):
            k = i * (lmax - lmin + 1) + longest - lmin
            rgba = emoji_rgba(emoji, longest)
            sprites[k, : rgba.shape[0], : rgba.shape[1]] = rgba
            extent[k] = rgba.shape[:2]
    as_tensor = torch.from_numpy
    return Atlas(as_tensor(sprites).to(device), as_tensor(extent).to(device), pool, lmin, lmax)


@dataclass
class Draws:
    """The parameters of a batch of composites (every field has the batch as its first axis)."""

    emoji: torch.Tensor  # index into the atlas's pool
    family: torch.Tensor  # index into FAMILIES
    colour: torch.Tensor  # index into COLOURS
    base: torch.Tensor  # (B, 3) float64 RGB, the colour
    other: torch.Tensor  # (B, 3) the second tone
    longest: torch.Tensor  # the sprite's longer side in pixels
    left: torch.Tensor
    top: torch.Tensor
    angle: torch.Tensor  # stripes, checks, dots, linear gradients
    shift: torch.Tensor  # (B, 2) offsets of the rotated frame
    period: torch.Tensor
    duty: torch.Tensor  # stripes: the share of a period in the first tone
    radius: torch.Tensor  # dots
    linear: torch.Tensor  # gradients: linear (True) or radial
    centre: torch.Tensor  # (B, 2) radial gradients' centre (x, y)
    reach: torch.Tensor  # radial gradients: the distance that reaches the second tone, / size
    gamma: torch.Tensor  # gradients: the exponent
    cells: torch.Tensor  # noise: the coarse grid's side
    coarse: torch.Tensor  # (B, CELLS, CELLS) noise: the coarse values (top-left cells x cells)
    grain: torch.Tensor  # (B, size, size) noise: the fine values
    mix: torch.Tensor  # noise: the grain's share

    def to(self, device: torch.device | str) -> Draws:
        return Draws(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def _grid(size: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = size * _SUPERSAMPLE
    coords = (torch.arange(n, dtype=like.dtype, device=like.device) + 0.5) / _SUPERSAMPLE
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return x, y


def _down(mask: torch.Tensor, size: int) -> torch.Tensor:
    return mask.reshape(-1, size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean((2, 4))


def _col(v: torch.Tensor) -> torch.Tensor:
    return v[:, None, None]


def _masks(d: Draws, size: int, family: str) -> torch.Tensor:
    """The two-tone mix ``t`` of one family for every sample of ``d``: ``(B, size, size)``."""
    if family == "noise":
        return _noise(d, size)
    x, y = _grid(size, d.base)
    if family == "gradient":
        a = _col(d.angle)
        t_lin = ((x - size / 2) * torch.cos(a) + (y - size / 2) * torch.sin(a)) / size + 0.5
        cx, cy = _col(d.centre[:, 0]), _col(d.centre[:, 1])
        t_rad = torch.hypot(x - cx, y - cy) / (size * _col(d.reach))
        t = torch.where(_col(d.linear), t_lin, t_rad)
        return _down(t.clamp(0, 1) ** _col(d.gamma), size)
    x, y = x - size / 2, y - size / 2
    c, s = torch.cos(_col(d.angle)), torch.sin(_col(d.angle))
    u = x * c + y * s + _col(d.shift[:, 0])
    v = -x * s + y * c + _col(d.shift[:, 1])
    p = _col(d.period)
    if family == "stripes":
        mask = (torch.remainder(u / p, 1.0) < _col(d.duty)).to(u.dtype)
    elif family == "checks":
        mask = torch.remainder(torch.floor(u / p) + torch.floor(v / p), 2)
    else:  # dots
        du, dv = torch.remainder(u, p) - p / 2, torch.remainder(v, p) - p / 2
        return 1.0 - _down((du**2 + dv**2 < _col(d.radius) ** 2).to(u.dtype), size)
    return _down(mask, size)


def _noise(d: Draws, size: int) -> torch.Tensor:
    """Coarse cells (bicubic, as Pillow's resize samples pixel centres) plus grain."""
    b = len(d.cells)
    coords = torch.arange(size, dtype=d.base.dtype, device=d.base.device) + 0.5
    src = coords[None] * d.cells[:, None].to(coords.dtype) / size - 0.5  # (B, size) in cells
    rows = torch.arange(CELLS, device=d.cells.device)
    clamp = torch.minimum(rows[None], d.cells[:, None] - 1)  # repeat the last valid cell
    coarse = d.coarse.gather(1, clamp[:, :, None].expand(b, CELLS, CELLS))
    coarse = coarse.gather(2, clamp[:, None, :].expand(b, CELLS, CELLS))
    g = (2 * src + 1) / CELLS - 1  # grid_sample's coordinates on the padded grid
    grid = torch.stack(torch.broadcast_tensors(g[:, None, :], g[:, :, None]), -1)
    smooth = torch.nn.functional.grid_sample(
        coarse[:, None].float(),
        grid.float(),
        mode="bicubic",
        padding_mode="border",
        align_corners=False,
    )[:, 0].to(d.base.dtype)
    low = smooth.amin((1, 2), keepdim=True)
    span = (smooth.amax((1, 2), keepdim=True) - low).clamp_min(1e-6)
    mix = _col(d.mix)
    return (1 - mix) * (smooth - low) / span + mix * d.grain


def textures(d: Draws, size: int) -> torch.Tensor:
    """The backgrounds of ``d``: uint8 ``(B, size, size, 3)``."""
    t = torch.zeros(len(d.family), size, size, dtype=d.base.dtype, device=d.base.device)
    for number, family in enumerate(FAMILIES):
        chosen = (d.family == number).nonzero()[:, 0]
        if family != "plain" and len(chosen):
            sub = Draws(**{f.name: getattr(d, f.name)[chosen] for f in fields(d)})
            t[chosen] = _masks(sub, size, family)
    base, other = d.base[:, None, None], d.other[:, None, None]
    t = t[..., None]
    return torch.round(((1 - t) * base + t * other).clamp(0, 255)).to(torch.uint8)


def render(atlas: Atlas, d: Draws, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The composites of ``d``: uint8 images ``(B, 3, size, size)`` and float alpha ``(B, size,
    size)``, ``round(a · fg + (1 - a) · bg)`` as the CPU renderer computes them."""
    bg = textures(d, size).to(torch.float64 if d.base.dtype == torch.float64 else torch.float32)
    k = atlas.index(d.emoji, d.longest)
    span = torch.arange(size, device=bg.device)
    rows = span[None, :] - d.top[:, None]  # (B, size) sprite row of each image row
    cols = span[None, :] - d.left[:, None]
    m = atlas.sprites.shape[1]
    inside = ((rows >= 0) & (rows < m))[:, :, None] & ((cols >= 0) & (cols < m))[:, None, :]
    fg = atlas.sprites[
        k[:, None, None], rows.clamp(0, m - 1)[:, :, None], cols.clamp(0, m - 1)[:, None, :]
    ]
    fg = fg * inside[..., None]
    a = fg[..., 3:].to(bg.dtype) / 255.0
    image = torch.round(a * fg[..., :3].to(bg.dtype) + (1.0 - a) * bg).to(torch.uint8)
    return image.permute(0, 3, 1, 2).contiguous(), a[..., 0].float()


def _uniform(g: torch.Generator, shape, low: float, high: float, dtype) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=g, device=g.device, dtype=dtype)


def draw(atlas: Atlas, n: int, size: int, generator: torch.Generator, dtype=torch.float32) -> Draws:
    """``n`` composites' parameters, drawn on the generator's device with the CPU renderer's
    distributions (every family's parameters are drawn for every sample; each uses its own)."""
    g, dev = generator, generator.device

    def u(low: float, high: float, *shape: int) -> torch.Tensor:
        return _uniform(g, (n, *shape), low, high, dtype)

    def ints(low: int, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(low, high, (n, *shape), generator=g, device=dev)

    emoji, family, colour = ints(0, len(atlas.pool)), ints(0, len(FAMILIES)), ints(0, len(COLOURS))
    palette = torch.tensor(list(COLOURS.values()), dtype=dtype, device=dev)
    base = (palette[colour] + u(-15, 15, 3)).clamp(0, 255)
    lighter = torch.rand(n, generator=g, device=dev) < 0.6
    other = torch.where(
        lighter[:, None],
        base + u(0.45, 0.8)[:, None] * (255 - base),
        base * (1 - u(0.35, 0.6))[:, None],
    )
    names = [FAMILIES[i] for i in range(len(FAMILIES))]
    is_ = {name: family == names.index(name) for name in names}
    checks = math.pi / 4 * ints(0, 2).to(dtype) + u(-0.1, 0.1)
    angle = torch.where(is_["stripes"], u(0, math.pi), u(0, 2 * math.pi))
    angle = torch.where(is_["checks"], checks, torch.where(is_["dots"], u(0, math.pi / 2), angle))
    period = torch.where(is_["dots"], u(size / 8, size / 4), u(size / 10, size / 4))
    longest = torch.round(u(*SCALE_RANGE) * size).long().clamp(atlas.lmin, atlas.lmax)
    h, w = atlas.extent[atlas.index(emoji, longest)].unbind(1)
    out_h, out_w = (MAX_OUTSIDE * h).long(), (MAX_OUTSIDE * w).long()
    left = (torch.rand(n, generator=g, device=dev) * (size - w + 2 * out_w + 1)).long() - out_w
    top = (torch.rand(n, generator=g, device=dev) * (size - h + 2 * out_h + 1)).long() - out_h
    return Draws(
        emoji=emoji,
        family=family,
        colour=colour,
        base=base,
        other=other,
        longest=longest,
        left=left,
        top=top,
        angle=angle,
        shift=u(0, size, 2),
        period=period,
        duty=u(0.35, 0.65),
        radius=u(0.2, 0.38) * period,
        linear=torch.rand(n, generator=g, device=dev) < 0.7,
        centre=u(0, size, 2),
        reach=u(0.7, 1.2),
        gamma=u(0.7, 1.4),
        cells=ints(3, CELLS + 1),
        coarse=u(0, 1, CELLS, CELLS),
        grain=u(0, 1, size, size),
        mix=u(0.15, 0.45),
    )


def cpu_draws(indices: list[int], split: Split = "train", size: int = 64, seed: int = 0) -> Draws:
    """The parameters of ``make_composite(i, split, size, seed)`` for each ``i``, read from the
    same numpy streams in the same order (float64, on the CPU)."""
    pool = split_emoji(split)
    rows = []
    for index in indices:
        rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], index]))
        r = dict(
            angle=0.0,
            shift=(0.0, 0.0),
            period=1.0,
            duty=0.5,
            radius=0.0,
            linear=True,
            centre=(0.0, 0.0),
            reach=1.0,
            gamma=1.0,
            cells=3,
            mix=0.0,
        )
        r["coarse"], r["grain"] = np.zeros((CELLS, CELLS)), np.zeros((size, size))
        r["emoji"] = int(rng.integers(len(pool)))
        r["family"] = int(rng.integers(len(FAMILIES)))
        r["colour"] = int(rng.integers(len(COLOURS)))
        family = FAMILIES[r["family"]]
        base = np.clip(
            np.array(list(COLOURS.values())[r["colour"]], float) + rng.uniform(-15, 15, 3), 0, 255
        )
        if rng.random() < 0.6:
            other = base + rng.uniform(0.45, 0.8) * (255 - base)
        else:
            other = base * (1 - rng.uniform(0.35, 0.6))
        r["base"], r["other"] = base, other
        if family in ("stripes", "checks", "dots"):
            if family == "stripes":
                r["angle"] = rng.uniform(0, np.pi)
            elif family == "checks":
                r["angle"] = rng.choice([0.0, np.pi / 4]) + rng.uniform(-0.1, 0.1)
            else:
                r["angle"] = rng.uniform(0, np.pi / 2)
            r["shift"] = (rng.uniform(0, size), rng.uniform(0, size))
            r["period"] = rng.uniform(size / 8 if family == "dots" else size / 10, size / 4)
            if family == "stripes":
                r["duty"] = rng.uniform(0.35, 0.65)
            if family == "dots":
                r["radius"] = rng.uniform(0.2, 0.38) * r["period"]
        elif family == "gradient":
            r["linear"] = bool(rng.random() < 0.7)
            if r["linear"]:
                r["angle"] = rng.uniform(0, 2 * np.pi)
            else:
                r["centre"] = tuple(rng.uniform(0, size, 2))
                r["reach"] = rng.uniform(0.7, 1.2)
            r["gamma"] = rng.uniform(0.7, 1.4)
        elif family == "noise":
            r["cells"] = int(rng.integers(3, 9))
            r["coarse"][: r["cells"], : r["cells"]] = rng.random((r["cells"], r["cells"])).astype(
                np.float32
            )
            r["grain"] = rng.random((size, size))
            r["mix"] = rng.uniform(0.15, 0.45)
        longest = max(1, round(float(rng.uniform(*SCALE_RANGE)) * size))
        h, w = emoji_rgba(pool[r["emoji"]], longest).shape[:2]
        r["longest"] = longest
        r["left"] = int(rng.integers(-int(MAX_OUTSIDE * w), size - w + int(MAX_OUTSIDE * w) + 1))
        r["top"] = int(rng.integers(-int(MAX_OUTSIDE * h), size - h + int(MAX_OUTSIDE * h) + 1))
        rows.append(r)
    columns = {f.name: torch.tensor(np.array([r[f.name] for r in rows])) for f in fields(Draws)}
    return Draws(**columns)
