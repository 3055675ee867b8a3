"""How sure a decomposition is: its runs' agreement, its orientation margin, how whole its layers
are, and the score that flags it (the engine's ``trace["confidence"]``)."""

from __future__ import annotations

import pytest
import torch

from tests.layerdecomp.cli.test_decompose import FAST, save_disk, toy  # noqa: F401 (a fixture)
from tests.layerdecomp.toy_backend import disk_image, toy_decompose


def test_run_agreement_matches_runs_up_to_their_labels():
    from layerdecomp.layers.stats import run_agreement

    fg = torch.zeros(4, 4)
    fg[:, :2] = 1  # the left half
    shifted = torch.zeros(4, 4)
    shifted[:, :3] = 1  # a quarter of the pixels more
    two = lambda f: torch.stack([f, 1 - f])  # noqa: E731
    runs = torch.stack([two(fg), two(1 - fg), two(shifted)])  # run 1: run 0 with labels swapped
    # run 0 against run 1: the same partition (swapped); against run 2: 1/4 of the pixels differ
    assert float(run_agreement(runs, 0)) == pytest.approx(1 - (0 + 0.25) / 2)
    assert float(run_agreement(runs[:2], 1)) == 1.0
    assert run_agreement(runs[:1], 0) is None  # one run: nothing to agree with


def test_orientation_margin_is_how_clearly_the_best_assignment_wins():
    from layerdecomp.layers.stats import assignment_scores, orientation_margin

    scores = torch.tensor([[-1.0, -3.0], [-2.0, -2.0]])
    assert float(orientation_margin(scores, 0)) == pytest.approx(0.5)  # (−1 + 3) / (1 + 3)
    assert float(orientation_margin(scores, 1)) == 0.0  # a swap fits as well
    fit = torch.tensor([[[-1.0, -2.0], [-3.0, -1.0]]])  # one run, two components, two prompts
    scores, perms = assignment_scores(fit, orient=True)
    assert perms.tolist() == [[0, 1], [1, 0]] and scores.tolist() == [[-2.0, -5.0]]
    assert float(orientation_margin(assignment_scores(fit, orient=False)[0], 0)) == 1.0


def test_a_run_records_how_sure_it_is():
    image, _ = disk_image()
    confidence = toy_decompose(image, updates=2, runs=2).trace["confidence"]
    assert 0 <= confidence["agreement"] <= 1 and 0 <= confidence["margin"] <= 1
    assert confidence["score"] == pytest.approx(
        confidence["margin"] * confidence["connected"], abs=1e-4
    )
    assert toy_decompose(image, updates=1, runs=1).trace["confidence"]["agreement"] is None


def test_the_connected_share_is_the_largest_piece_of_the_least_whole_layer():
    from layerdecomp.layers.stats import connected_share

    one = torch.zeros(1, 1, 6, 6)
    one[..., 1:4, 1:4] = 0.9  # one 3×3 square
    torn = torch.zeros(1, 1, 6, 6)
    torn[..., 0, :3] = 1  # 3 pixels
    torn[..., 5, 5] = 1  # 1 pixel apart
    torn[..., 4, 4] = 1  # diagonal to it: not 4-connected
    assert connected_share(one) == 1.0
    assert connected_share(torn) == pytest.approx(3 / 5)
    assert connected_share(torch.cat([one, torn])) == pytest.approx(3 / 5)  # the least whole
    assert connected_share(torch.full((1, 1, 4, 4), 0.4)) == 0.0  # nothing above ½


def test_a_low_score_is_a_doubt_in_words():
    from layerdecomp.layers.stats import UNSURE_SCORE, confidence, doubt

    assert doubt({"agreement": 0.9, "margin": 1.0, "connected": 1.0, "score": UNSURE_SCORE}) is None
    assert doubt({"agreement": None, "margin": None, "connected": 1.0, "score": None}) is None
    whole = torch.ones(1, 1, 4, 4)
    said = doubt(confidence(None, torch.tensor(0.12), whole))  # prompts barely tell them apart
    assert said.startswith("the layers may be wrong") and "0.12" in said and "seed" in said
    torn = torch.zeros(1, 1, 4, 4)
    torn[..., ::2, ::2] = 1  # four pieces of one pixel
    said = doubt(confidence(None, torch.tensor(0.8), torn))  # a clear margin, a layer in pieces
    assert "0.20" in said and "25% of the foreground is one piece" in said


def test_the_command_warns_and_run_json_says_why(tmp_path, cli, monkeypatch, toy):  # noqa: F811
    """A run whose margin is below the threshold warns on stderr and records why in run.json; a
    sure one records ``unsure: null``."""
    import json

    from layerdecomp.layers import stats

    save_disk(tmp_path / "disk.png")
    args = ["decompose", tmp_path / "disk.png", "--fg", "red", "--bg", "blue", *FAST[:-1]]
    sure = cli(*args, "-o", tmp_path / "sure")
    assert sure.exit_code == 0 and "warning:" not in sure.stderr, sure.output
    assert json.loads((tmp_path / "sure" / "run.json").read_text())["unsure"] is None
    monkeypatch.setattr(stats, "UNSURE_SCORE", 2.0)  # every score is below it now
    unsure = cli(*args, "-o", tmp_path / "unsure")
    assert unsure.exit_code == 0
    assert "warning: the layers may be wrong" in unsure.stderr
    assert json.loads((tmp_path / "unsure" / "run.json").read_text())["unsure"].startswith(
        "the layers may be wrong"
    )
