"""A front layer takes the background's regions it encloses (``fill_holes``,
:func:`layerdecomp.layers.stats.fill_enclosed`)."""

from __future__ import annotations

import torch

from layerdecomp.layers.stats import fill_enclosed
from tests.layerdecomp.toy_backend import COLOURS, toy_decompose


def ring(side: int = 12, outer: int = 4, inner: int = 2) -> torch.Tensor:
    """A square ring (side, side): 1 between two concentric squares, its inside and outside 0."""
    c = side // 2
    mask = torch.zeros(side, side)
    mask[c - outer : c + outer, c - outer : c + outer] = 1
    mask[c - inner : c + inner, c - inner : c + inner] = 0
    return mask


def test_the_inside_of_a_ring_goes_to_the_front_layer_and_the_shares_still_sum_to_one():
    fg = 0.9 * ring()
    masks = torch.stack([fg, 1 - fg])[None]  # one run of two layers: (1, 2, 12, 12)
    filled = fill_enclosed(masks)
    inside = torch.zeros(12, 12, dtype=torch.bool)
    inside[4:8, 4:8] = True
    assert torch.equal(filled[0, 0][inside], torch.ones(16))  # the background's share moved
    assert torch.equal(filled[0][:, ~inside], masks[0][:, ~inside])  # nothing else
    assert torch.allclose(filled.sum(1), torch.ones(1, 12, 12))
    # runs are filled each on its own: a second run with no ring keeps its shares
    two = fill_enclosed(torch.cat([masks, masks.flip(1)]))
    assert torch.equal(two[0], filled[0]) and torch.equal(two[1], masks.flip(1)[0])


def test_a_region_open_to_the_frame_or_held_by_another_front_layer_stays():
    open_ring = ring()
    open_ring[5:7, 8:] = 0  # a gap from the inside to the frame: not enclosed
    masks = torch.stack([open_ring, 1 - open_ring])[None]
    assert fill_enclosed(masks) is masks  # nothing enclosed: the same shares
    frame = 1 - ring(12, 2, 0)  # holds the whole frame around a square hole: a window
    assert fill_enclosed(torch.stack([frame, 1 - frame])[None])[0, 0].equal(frame)
    front, middle = ring(), torch.zeros(12, 12)
    middle[5:7, 5:7] = 1  # a second front layer inside the ring
    back = 1 - front - middle
    filled = fill_enclosed(torch.stack([front, middle, back])[None])[0]
    assert torch.equal(filled[1], middle)  # kept by its own layer
    assert float(filled[0, 4:8, 4:8].sum()) == 16 - 4  # the ring takes the rest of its inside
    assert float(filled[2, 4:8, 4:8].sum()) == 0


def test_the_engine_gives_a_ring_its_inside_unless_told_not_to():
    alpha = ring(16, 6, 3)[None, None]
    red, blue = (torch.tensor(COLOURS[c]).view(1, 3, 1, 1) for c in ("red", "blue"))
    image = alpha * red + (1 - alpha) * blue
    kept = toy_decompose(image, fill_holes=False, smoothing=0.0)
    filled = toy_decompose(image, smoothing=0.0)
    inside = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    inside[..., 5:11, 5:11] = True
    assert bool((kept.mask[inside] < 0.5).all())  # the engine itself leaves the hole
    assert bool((filled.mask[inside] > 0.5).all())  # the rule fills it
    assert torch.equal(filled.mask[~inside], kept.mask[~inside])  # the same run, filled
    for layers in (kept, filled):  # both still recompose the input
        assert (layers.recomposition - image).abs().max() <= 1e-5
