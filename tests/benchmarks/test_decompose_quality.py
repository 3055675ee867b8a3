"""``benchmarks/decompose_quality.py``: engine options generated from ``DecomposeConfig``, the tail
of the per-image IoU, the field's metrics and the failure gallery, on a tiny run of ``mini``."""

import json
import re
import runpy
from pathlib import Path

import pytest

from layerdecomp.layers import DecomposeConfig
from layerdecomp.options import option_fields

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "decompose_quality.py"
bench = runpy.run_path(str(SCRIPT), run_name="decompose_quality")


def test_every_engine_option_but_matting_is_an_option_of_the_benchmark():
    import argparse

    parser = argparse.ArgumentParser()
    names = bench["add_config_arguments"](parser, DecomposeConfig, bench["SET_HERE"])
    assert set(names) == set(option_fields(DecomposeConfig)) - {"matting"}


def test_engine_options_are_parsed_by_their_fields_type_and_checked(capsys):
    import argparse

    from _config_args import add_config_arguments, config_overrides

    parser = argparse.ArgumentParser()
    names = add_config_arguments(parser, DecomposeConfig)
    args = parser.parse_args(
        ["--updates", "3", "--orient-by", "inpainting", "--anchor", "no", "--lam", "0.2"]
    )
    overrides = config_overrides(args, names)
    assert overrides.keys() == {"updates", "orient_by", "anchor", "lam"}
    assert overrides["updates"] == 3 and overrides["anchor"] is False
    assert str(overrides["lam"]) == "constant:0.2"
    with pytest.raises(SystemExit):
        parser.parse_args(["--orient-by", "guessing"])  # not one of the field's choices
    assert "inpainting" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--iterations", "3"])  # an earlier name: refused, naming the new one
    assert "renamed; use updates" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench["main"](["--updates", "0"])  # below the field's bound: refused before any model
    assert "updates" in capsys.readouterr().err


def test_the_tail_counts_the_shares_below_each_threshold_and_lists_the_worst_first():
    from _layer_report import tail_figures, tail_report

    ious = [0.95, 0.45, 0.6, 0.1, 0.8]  # below 0.5: 0.45, 0.1 (2/5); below 0.7: also 0.6 (3/5)
    rows = [{"index": i + 7, "iou": x, "matted_iou": 1.0} for i, x in enumerate(ious)]
    lines = tail_report("m", rows)
    engine = next(line for line in lines if line.startswith("IoU, engine"))
    assert engine.split()[2:7] == ["0.400", "(2)", "0.600", "(3)", "0.100"]
    matted = next(line for line in lines if line.startswith("IoU, matted"))
    assert matted.split()[3:7] == ["0.000", "(0)", "0.000", "(0)"]
    worst = [line.split()[0] for line in lines if line.startswith("  index=")]
    assert worst == ["index=10", "index=8", "index=9", "index=11", "index=7"]
    assert tail_figures(rows) == (
        "iou_below_0.5=0.400 iou_below_0.7=0.600 "
        "matted_iou_below_0.5=0.000 matted_iou_below_0.7=0.000"
    )


@pytest.mark.usefixtures("one_thread")
def test_a_tiny_run_reports_the_tail_and_the_fields_metrics_and_draws_each_failure(
    tmp_path, capsys
):
    gallery, rows_file = tmp_path / "gallery", tmp_path / "rows.json"
    tiny = ["--updates", "1", "--samples", "1", "--runs", "1", "--final-samples", "1"]
    # a damping of 0.01 leaves the masks near their random start: IoUs far below 0.5
    tiny += ["--orient-levels", "1", "--damping", "0.01", "--no-baselines"]
    bench["main"](["--n", "3", *tiny, "--gallery", str(gallery), "--rows", str(rows_file)])
    out = capsys.readouterr().out
    rows = json.loads(rows_file.read_text())["mini"]
    assert [row["index"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert 0 <= row["soft_iou"] <= 1 and 0 <= row["fg_l1"] <= 1 and 0 <= row["bg_l1"] <= 1
    for label in ("soft IoU, engine", "fg RGB L1, matted", "bg RGB L1, engine"):
        assert re.search(rf"^{label}\s+\d\.\d{{3}}", out, re.M), label
    last = dict(item.split("=") for item in out.strip().splitlines()[-1].split())
    for key in ("iou", "soft_iou", "bg_l1"):
        assert float(last[key]) == pytest.approx(sum(r[key] for r in rows) / 3, abs=6e-4)
    for key in ("iou", "matted_iou"):
        for threshold in (0.5, 0.7):
            share = sum(row[key] < threshold for row in rows) / 3
            assert float(last[f"{key}_below_{threshold}"]) == pytest.approx(share, abs=6e-4)
    listed = re.findall(r"^  index=(\d+) iou=([\d.]+) matted_iou=([\d.]+)$", out, re.M)
    by_iou = sorted(rows, key=lambda row: (row["iou"], row["index"]))
    assert [int(i) for i, _, _ in listed] == [row["index"] for row in by_iou]
    for (_, iou, matted), row in zip(listed, by_iou, strict=True):
        assert float(iou) == pytest.approx(row["iou"], abs=6e-4)
        assert float(matted) == pytest.approx(row["matted_iou"], abs=6e-4)
    failing = {f"{row['index']}.png" for row in rows if row["iou"] < 0.5}
    assert failing and {p.name for p in gallery.iterdir()} == failing
    causes = {row["cause"] for row in rows if row["iou"] < 0.5}
    assert causes and causes <= {"orientation", "selection", "collapse", "partial", "texture"}
    assert all("cause" not in row for row in rows if row["iou"] >= 0.5)
    assert f"causes of the {len(failing)} failures" in out


def test_the_confidence_auc_by_hand():
    from _layer_report import confidence_report, flags_failures

    # good images score 0.9 and 0.8, failed ones 0.1 and 0.85: 3 of the 4 pairs rank right
    assert flags_failures([0.9, 0.8, 0.1, 0.85], [False, False, True, True]) == 0.75
    assert flags_failures([0.5, 0.5], [False, True]) == 0.5  # a tie counts half
    assert flags_failures([0.9], [False]) is None  # no failure: nothing to flag

    def row(iou, agreement, margin, connected, score):
        figures = dict(agreement=agreement, margin=margin, connected=connected, score=score)
        return {"iou": iou, **{f"confidence_{k}": v for k, v in figures.items()}}

    rows = [
        row(0.9, 0.9, 0.6, 1.0, 0.6),
        row(0.2, 0.3, 0.7, 0.5, 0.35),
        {"iou": 0.1, "confidence_margin": 0.1},  # without every figure: left out
    ]
    (line,) = confidence_report(rows)
    assert line == (
        "confidence AUC for IoU < 0.5 (1 of 2): agreement 1.000, margin 0.000, "
        "connected 1.000, score 1.000"
    )


def test_each_failure_gets_the_first_cause_that_holds():
    import numpy as np
    from _layer_report import cause_report, failure_cause

    truth = np.zeros((10, 10), bool)
    truth[2:6, 2:6] = True  # a 16-pixel object
    object_, background = truth.astype(float), 1 - truth.astype(float)
    elsewhere = np.zeros((10, 10))
    elsewhere[7:, 7:] = 1  # a patch of background

    def runs(*fgs):
        return np.stack([np.stack([fg, 1 - fg]) for fg in fgs])

    # the partition is the object's, the prompts the other way round
    assert failure_cause(background, runs(background), truth) == "orientation"
    # the picked run missed; another run's component holds the object
    assert failure_cause(elsewhere, runs(elsewhere, object_), truth) == "selection"
    tiny = np.zeros((10, 10))
    tiny[3, 3] = 1  # 1 pixel: under a tenth of the object
    assert failure_cause(tiny, runs(tiny), truth) == "collapse"
    part = np.zeros((10, 10))
    part[2:6, 2] = 1  # 4 of its 16 pixels, none outside
    assert failure_cause(part, runs(part), truth) == "partial"
    spread = elsewhere.copy()
    spread[2, 2] = 1  # mostly background
    assert failure_cause(spread, runs(spread), truth) == "texture"
    rows = [{"cause": "texture"}, {"cause": "selection"}, {"cause": "texture"}, {"iou": 1.0}]
    assert cause_report(rows) == [
        "causes of the 3 failures (IoU < 0.5): orientation 0, selection 1, collapse 0, "
        "partial 0, texture 2"
    ]


@pytest.mark.usefixtures("one_thread")
def test_indices_pick_the_composites(tmp_path, capsys):
    rows_file = tmp_path / "rows.json"
    tiny = ["--updates", "1", "--samples", "1", "--runs", "1", "--final-samples", "1"]
    tiny += ["--orient-levels", "1", "--no-baselines", "--rows", str(rows_file)]
    bench["main"](["--indices", "4", "2", *tiny])
    rows = json.loads(rows_file.read_text())["mini"]
    assert [row["index"] for row in rows] == [4, 2]
    assert "n=2 " in capsys.readouterr().out
