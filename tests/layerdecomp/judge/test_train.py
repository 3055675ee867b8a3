"""Training the judge: one step on a handful of composites saves and reloads to identical
predictions, runs are reproducible, the command line writes weights, config and card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from layerdecomp.judge import ATTRIBUTES, Judge
from layerdecomp.judge.__main__ import main
from layerdecomp.judge.train import JudgeRecipe, augmentation, render, train_judge

TINY = {"n": 8, "steps": 1, "minutes": None, "batch": 4, "eval_n": 4, "widths": (8, 8, 16, 16)}


@pytest.fixture(scope="module")
def trained():
    return train_judge(JudgeRecipe(**TINY))


def test_render_gives_composites_and_their_labels():
    images, labels = render("heldout", 3, start=5)
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8
    from layerdecomp.data.composites import make_composite

    c = make_composite(6, "heldout")
    assert np.array_equal(images[1], c.image)
    assert {k: labels[k][1] for k in ATTRIBUTES} == {k: getattr(c, k) for k in ATTRIBUTES}


def test_one_step_trains_saves_and_reloads_to_identical_predictions(trained, tmp_path):
    judge, record = trained
    assert record["steps"] == 1 and record["heldout"]["n"] == 4
    assert set(record["heldout"]["accuracy"]) == set(ATTRIBUTES)
    fresh = Judge.create(TINY["widths"], seed=0)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(judge.net.parameters(), fresh.net.parameters(), strict=True)
    ]
    assert all(moved)  # the step changed every tensor
    judge.save(tmp_path, card="# card\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "JUDGE_CARD.md",
        "config.json",
        "judge.safetensors",
    ]
    loaded = Judge.load(tmp_path)
    assert loaded.config == json.loads(json.dumps(judge.config))
    images, _ = render("heldout", 6, start=100)
    before, after = judge.logits(images), loaded.logits(images)
    for k in ATTRIBUTES:
        assert torch.equal(before[k], after[k])
    assert loaded.predict(images) == judge.predict(images)


def test_training_is_reproducible_from_its_seed(trained):
    judge, _ = trained
    again, _ = train_judge(JudgeRecipe(**TINY))
    for (name, a), b in zip(
        judge.net.state_dict().items(), again.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_augmentation_keeps_shape_and_range_and_changes_pixels():
    torch.manual_seed(0)
    images, _ = render("train", 8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    y = augmentation()(x).clamp(0, 1)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert (y - x).abs().mean() > 0.005


def test_a_recipe_needs_minutes_or_steps():
    with pytest.raises(ValueError, match="minutes or steps"):
        JudgeRecipe(minutes=None, steps=None)
    with pytest.raises(ValueError, match="need n, batch"):
        JudgeRecipe(n=0)


def test_the_command_line_writes_weights_config_and_card(tmp_path):
    out = tmp_path / "judge"
    args = ["--out", out, "--n", 4, "--steps", 1, "--batch", 4, "--eval-n", 4]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith(f"saved {out}: held-out emoji=")
    card = (out / "JUDGE_CARD.md").read_text()
    assert "--steps 1" in card and "| emoji | texture | colour |" in card
    assert Judge.load(out).config["training"]["recipe"]["n"] == 4
    result = CliRunner().invoke(main, ["--out", str(tmp_path / "x"), "--minutes", "0"])
    assert result.exit_code == 2 and "--minutes" in result.output


def test_the_command_line_refuses_an_output_it_cannot_create_before_training(tmp_path):
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(main, ["--out", str(tmp_path / "file" / "judge"), "--steps", "1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: --out {str(tmp_path / 'file' / 'judge')!r}: cannot be created (Not a directory)"
    ]
    result = CliRunner().invoke(main, ["--out", str(tmp_path / "file")])
    assert result.exit_code == 2 and "is a file" in result.output
