"""Tiles: cover the image, blend back exactly, and tiled runs on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from layerdecomp.models import load_model
from layerdecomp.tasks import tiles
from layerdecomp.tasks.inpaint import inpaint
from layerdecomp.tasks.superres import superres

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "size, tile, overlap", [((37, 20), 16, 4), ((16, 16), 16, 4), ((5, 40), 8, 2)]
)
def test_boxes_cover_every_pixel_and_blending_cut_tiles_gives_the_image_back(size, tile, overlap):
    placed = tiles.boxes(size, tile, overlap)
    width, height = size
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    covered = torch.zeros(height, width)
    for left, top, right, bottom in placed:
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        assert right - left == min(tile, width) and bottom - top == min(tile, height)
        covered[top:bottom, left:right] += 1
    assert covered.min() >= 1
    cut = torch.cat([image[:, :, t:b, lt:r] for lt, t, r, b in placed])
    assert torch.allclose(tiles.blend(cut, placed, size, overlap), image, atol=1e-6)


def test_blending_weights_fall_off_across_the_overlap():
    placed = tiles.boxes((12, 4), 8, 4)  # two tiles overlapping on columns 4..7
    assert placed == [(0, 0, 8, 4), (4, 0, 12, 4)]
    pieces = torch.stack([torch.zeros(1, 4, 8), torch.ones(1, 4, 8)])
    row = tiles.blend(pieces, placed, (12, 4), 4)[0, 0, 0]
    assert row[:4].eq(0).all() and row[8:].eq(1).all()
    assert (row[4:8].diff() > 0).all() and 0 < row[4] < 0.5 < row[7] < 1


def test_round_up_and_size_factor():
    assert tiles.round_up(10, 4) == 12 and tiles.round_up(0, 8) == 8
    assert tiles.far_above((512, 512), (64, 64)) == 64 and tiles.far_above((9, 9), None) == 1


def _image(width, height, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_tiled_superres_is_reproducible_and_counts_its_tiles(sd1_folder):
    backend = load_model(str(sd1_folder), device="cpu")
    kwargs = dict(scale=2, steps=1, iters=1, seed=4, disable_progress=True)
    a = superres(backend, _image(10, 8), tile=8, tile_batch=3, **kwargs)
    b = superres(backend, _image(10, 8), tile=8, tile_batch=3, **kwargs)
    assert a.image.size == (20, 16) and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    params = a.parameters
    assert params["tiles"] == 9 and params["tile_side"] == 8 and params["tile_overlap"] == 2
    assert a.nfe == 3 * (1 + 2 * 1)  # three batches of 3 tiles, 1 + 2K evaluations each
    whole = superres(backend, _image(10, 8), **kwargs)
    assert "tiles" not in whole.parameters and whole.image.size == (20, 16)


def test_tiled_inpainting_skips_tiles_with_nothing_to_fill_and_keeps_known_pixels(sd1_folder):
    backend = load_model(str(sd1_folder), device="cpu")
    image = _image(24, 8)
    mask = Image.new("L", (24, 8), 0)
    mask.paste(255, (2, 2, 5, 6))  # only the first tile touches the hole
    out = inpaint(backend, image, mask, tile=8, steps=1, iters=1, seed=0, disable_progress=True)
    assert out.parameters["tiles"] == 1 and out.image.size == (24, 8)
    keep = np.asarray(mask) == 0
    assert (np.asarray(out.image)[keep] == np.asarray(image)[keep]).all()
    raw = np.asarray(out.raw[0]).astype(int)
    assert (raw[:, 10:] == np.asarray(image)[:, 10:]).all()  # untouched tiles: the input itself
