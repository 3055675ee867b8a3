"""The judge's contracts: the shipped weights reach their recorded held-out accuracy, predict and
accuracy agree with each other, bad input and bad weights are refused with one clear line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from layerdecomp.data.textures import COLOURS, FAMILIES
from layerdecomp.judge import ATTRIBUTES, LABELS, SHIPPED_DIR, Judge, check_images
from layerdecomp.judge.model import to_input
from layerdecomp.judge.train import render

N = 128


@pytest.fixture(scope="module")
def shipped():
    return Judge.load()


@pytest.fixture(scope="module")
def heldout():
    """The first N held-out composites and their labels (the start of the recorded set)."""
    return render("heldout", N)


def test_labels_cover_every_emoji_family_and_colour():
    assert len(LABELS["emoji"]) == 64 and LABELS["texture"] == FAMILIES
    assert LABELS["colour"] == tuple(COLOURS)


def test_shipped_judge_is_small_and_reaches_its_recorded_heldout_accuracy(
    shipped, heldout, one_thread
):
    assert (SHIPPED_DIR / "judge.safetensors").stat().st_size < 2 * 2**20
    record = shipped.config["training"]["heldout"]
    assert record["split"] == "heldout" and record["n"] >= N
    images, labels = heldout
    accuracy = shipped.accuracy(images, labels)
    for k in ATTRIBUTES:
        p = record["accuracy"][k]
        tolerance = 4 * math.sqrt(p * (1 - p) / N) + 1 / N  # binomial spread of a subset
        assert abs(accuracy[k] - p) <= tolerance, (k, accuracy[k], p)
    assert accuracy["colour"] >= 0.9 and accuracy["texture"] >= 0.8 and accuracy["emoji"] >= 0.5


def test_predict_and_accuracy_agree(shipped, heldout, one_thread):
    images, labels = heldout
    images = images[:16]
    predicted = shipped.predict(images)
    assert set(predicted) == set(ATTRIBUTES)
    for k in ATTRIBUTES:
        assert len(predicted[k]) == 16 and set(predicted[k]) <= set(LABELS[k])
    assert shipped.accuracy(images, predicted) == {k: 1.0 for k in ATTRIBUTES}
    truth = {k: labels[k][:16] for k in ("colour", "emoji")}
    expected = {
        k: np.mean([a == b for a, b in zip(predicted[k], truth[k], strict=True)]) for k in truth
    }
    assert shipped.accuracy(images, truth) == pytest.approx(expected, abs=0)
    # one image's predicted colour swapped for another: exactly one fewer hit
    wrong = list(predicted["colour"])
    wrong[3] = next(c for c in LABELS["colour"] if c != wrong[3])
    assert shipped.accuracy(images, {"colour": wrong}) == {"colour": 15 / 16}
    # a list of arrays, a tensor, and chunking (batch 1 vs all) give the same labels
    assert shipped.predict(list(images)) == predicted
    assert shipped.predict(torch.from_numpy(images)) == predicted
    one_by_one = [shipped.predict(images[i : i + 1]) for i in range(3)]
    assert [p["emoji"][0] for p in one_by_one] == predicted["emoji"][:3]


def test_other_sizes_are_resized_and_64_px_is_passed_through():
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    x = to_input(images)
    assert torch.equal(x, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)  # 128 px, each pixel 2x2
    torch.testing.assert_close(to_input(big), x, atol=1e-6, rtol=0)
    flat = np.full((1, 20, 30, 3), 77, np.uint8)  # smaller and not square: enlarged
    assert to_input(flat).shape == (1, 3, 64, 64)
    torch.testing.assert_close(to_input(flat), torch.full((1, 3, 64, 64), 77 / 255))


@pytest.mark.parametrize(
    ("images", "fragment"),
    [
        (np.zeros((2, 64, 64, 3), np.float32), "dtype uint8"),
        (np.zeros((64, 64, 3), np.uint8), "images[None]"),
        (np.zeros((2, 64, 64, 4), np.uint8), "(N, H, W, 3)"),
        (np.zeros((0, 64, 64, 3), np.uint8), "(N, H, W, 3)"),
        (np.zeros((1, 4, 64, 3), np.uint8), "H and W >= 8"),
        ([np.zeros((64, 64, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)], "uint8"),
    ],
)
def test_bad_images_are_refused_with_one_line(images, fragment, shipped):
    for call in (check_images, shipped.predict, lambda x: shipped.accuracy(x, {"colour": []})):
        with pytest.raises(ValueError, match="^images: ") as error:
            call(images)
        assert fragment in str(error.value) and "\n" not in str(error.value)


def test_bad_truth_is_refused(shipped, heldout):
    images = heldout[0][:4]
    for truth, fragment in [
        ({}, "expected labels for some of emoji"),
        ({"shape": ["x"] * 4}, "expected labels for some of emoji"),
        ({"colour": ["red"] * 3}, "3 labels for 4 images"),
        ({"colour": ["red", "red", "teal", "red"]}, "unknown label(s) teal"),
    ]:
        with pytest.raises(ValueError, match="^truth") as error:
            shipped.accuracy(images, truth)
        assert fragment in str(error.value)


def test_missing_or_mismatched_weights_are_refused(tmp_path, shipped):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        Judge.load(tmp_path)
    shipped.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["widths"] = [8, 8, 8, 8]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config and weights do not fit"):
        Judge.load(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="unreadable"):
        Judge.load(tmp_path)
