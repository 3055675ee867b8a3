"""Two-object composites: determinism, exact ground truth, order, overlap, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layerdecomp.data import make_pair, write_pairs
from layerdecomp.data.composites import make_composite
from layerdecomp.data.emoji import NOVEL_EMOJI, emoji_prompt
from layerdecomp.data.pairs import OVERLAP_RANGE


def test_deterministic_and_distinct_from_singles():
    a, b = make_pair(3, "heldout", 48, 1), make_pair(3, "heldout", 48, 1)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption
    assert not np.array_equal(make_pair(4, "heldout", 48, 1).image, a.image)
    assert not np.array_equal(make_composite(3, "heldout", 48, 1).bg, a.bg)


@pytest.mark.parametrize("index", range(6))
def test_layers_recompose_the_image_front_to_back(index):
    p = make_pair(index, "train", 64, 0)
    shares = p.visible
    assert shares.shape == (3, 64, 64) and np.allclose(shares.sum(0), 1, atol=1e-6)
    colours = np.stack([p.fgs[0, ..., :3], p.fgs[1, ..., :3], p.bg]).astype(np.float64)
    recomposed = (shares[..., None] * colours).sum(0)
    assert np.abs(recomposed - p.image).max() <= 0.5 + 1e-4  # rounding only
    assert np.array_equal(p.alphas, p.fgs[..., 3] / np.float32(255))
    # the front object is on top: where it is opaque the image is its colour
    opaque = p.alphas[0] == 1
    assert opaque.any() and np.array_equal(p.image[opaque], p.fgs[0, ..., :3][opaque])


@pytest.mark.parametrize("index", range(10))
def test_partial_overlap_and_two_different_objects(index):
    p = make_pair(index, "heldout", 64, 0)
    front, back = p.alphas.astype(np.float64)
    overlap = (front * back).sum() / back.sum()
    assert OVERLAP_RANGE[0] <= overlap <= OVERLAP_RANGE[1] and overlap == pytest.approx(p.overlap)
    assert p.emoji[0] != p.emoji[1]
    assert p.captions_fg == tuple(emoji_prompt(e) for e in p.emoji)
    assert p.caption == f"{p.captions_fg[0]} and {p.captions_fg[1]} on {p.caption_bg}"


def test_novel_split_uses_novel_emoji_only():
    for index in range(5):
        assert set(make_pair(index, "novel", 32, 0).emoji) <= NOVEL_EMOJI


def test_bad_arguments():
    with pytest.raises(ValueError, match="size >= 16"):
        make_pair(0, "heldout", 8)
    with pytest.raises(ValueError, match="unknown split"):
        make_pair(0, "test")  # type: ignore[arg-type]


def test_write_pairs(tmp_path):
    from PIL import Image

    records = write_pairs(tmp_path, "heldout", n=2, size=32, start=5)
    meta = json.loads((tmp_path / "captions.json").read_text())
    assert meta["samples"] == records and [r["index"] for r in records] == [5, 6]
    p = make_pair(6, "heldout", 32)
    assert np.array_equal(np.asarray(Image.open(tmp_path / records[1]["image"])), p.image)
    fg1 = np.asarray(Image.open(tmp_path / records[1]["fg_images"][1]))
    assert np.array_equal(fg1, p.fgs[1]) and records[1]["caption"] == p.caption
