"""``layerdecomp inpaint`` end to end (click's runner, tiny SD 1.x folder), and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from layerdecomp.models import resolve as resolve_module

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "2", "--iters", "1", "--seed", "5", "-q"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (15, 21, 4), dtype=np.uint8), mode="RGBA")
    image.save(tmp_path / "in.png")
    mask = Image.new("L", (21, 15), 0)
    mask.paste(255, (5, 4, 14, 11))
    mask.save(tmp_path / "mask.png")
    return tmp_path


def test_help(cli):
    result = cli("--help")
    assert result.exit_code == 0 and "inpaint" in result.stdout
    result = cli("inpaint", "--help")
    assert result.exit_code == 0
    for option in (
        "--mask",
        "--prompt",
        "--negative-prompt",
        "--guidance",
        "--model",
        "--steps",
        "--iters",
        "--direction",
        "--seed",
        "--restarts",
        "--device",
        "--dtype",
        "--no-paste-back",
        "--allow-pickle",
    ):
        assert option in result.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "layerdecomp", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "inpaint" in proc.stdout


def test_inpaint_end_to_end(files, sd1_folder, cli):
    out = files / "out.png"
    result = cli(
        "inpaint",
        files / "in.png",
        "--mask",
        files / "mask.png",
        "-o",
        out,
        "--model",
        sd1_folder,
        "--prompt",
        "a cat",
        "--guidance",
        "1.5",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    source = np.asarray(Image.open(files / "in.png").convert("RGB"))
    written = Image.open(out)
    assert written.size == (21, 15) and written.mode == "RGB"
    keep = np.asarray(Image.open(files / "mask.png")) == 0
    assert (np.asarray(written)[keep] == source[keep]).all()
    assert not (np.asarray(written)[~keep] == source[~keep]).all()

    meta = json.loads(out.with_suffix(".json").read_text())
    for key in (
        "command",
        "image",
        "mask",
        "output",
        "image_mode",
        "model",
        "device",
        "dtype",
        "parameters",
        "seed",
        "size",
        "work_size",
        "nfe",
        "timings",
        "residuals",
        "versions",
    ):
        assert key in meta, key
    assert meta["image_mode"] == "RGBA" and meta["size"] == [21, 15]
    assert meta["model"]["spec"] == str(sd1_folder) and meta["model"]["kind"] == "sd"
    params = meta["parameters"]
    assert params["prompt"] == "a cat" and params["guidance"] == 1.5 and params["seed"] == 5
    assert params["steps"] == 2 and params["iters"] == 1 and params["direction"] == "newton"
    assert params["paste_back"] is True and params["model"] == str(sd1_folder)
    assert meta["nfe"] == 2 * (1 + 2)
    assert set(meta["timings"]) >= {"load", "sample", "total"}
    assert len(meta["residuals"]["first"]) == len(meta["residuals"]["last"]) == 2
    assert set(meta["versions"]) >= {"layerdecomp", "torch", "diffusers"}
    assert sorted(p.name for p in files.iterdir()) == ["in.png", "mask.png", "out.json", "out.png"]


def test_no_paste_back_and_gradient(files, sd1_folder, cli):
    out = files / "raw.png"
    result = cli(
        "inpaint",
        files / "in.png",
        "--mask",
        files / "mask.png",
        "-o",
        out,
        "--model",
        sd1_folder,
        "--no-paste-back",
        "--direction",
        "gradient",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["parameters"]["paste_back"] is False and meta["backward"] == 2
    source = np.asarray(Image.open(files / "in.png").convert("RGB"))
    assert not (np.asarray(Image.open(out)) == source).all()


def test_bad_inputs(files, monkeypatch, cli, one_line_error, no_outputs):
    base = ["--mask", files / "mask.png", "-o", files / "out.png", "--model", "unused", *FAST]
    one_line_error(cli("inpaint", files / "missing.png", *base), 1, "no such file")
    (files / "text.png").write_text("not an image")
    one_line_error(cli("inpaint", files / "text.png", *base), 1, "not an image file")
    Image.new("L", (22, 15), 255).save(files / "wide.png")
    one_line_error(
        cli("inpaint", files / "in.png", "--mask", files / "wide.png", "-o", files / "out.png"),
        1,
        "does not match",
    )
    Image.new("L", (21, 15), 0).save(files / "black.png")
    one_line_error(
        cli("inpaint", files / "in.png", "--mask", files / "black.png", "-o", files / "out.png"),
        1,
        "nothing to fill",
    )
    one_line_error(
        cli(
            "inpaint",
            files / "in.png",
            "--mask",
            files / "mask.png",
            "-o",
            files / "text.png" / "out.png",
        ),
        1,
        "is a file, not a folder",
    )
    one_line_error(cli("inpaint", files / "in.png", "-o", files / "out.png"), 2, "--mask")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    one_line_error(cli("inpaint", files / "in.png", *base), 1, "decompression bomb")
    no_outputs(files)


def test_model_spec_errors_exit_2(files, monkeypatch, cli, one_line_error, no_outputs):
    base = [files / "in.png", "--mask", files / "mask.png", "-o", files / "out.png", *FAST]
    monkeypatch.setattr(resolve_module, "MINI_DIR", files / "no-mini")
    one_line_error(cli("inpaint", *base), 2, "'mini' is not installed")
    one_line_error(cli("inpaint", *base, "--model", files / "nope"), 2, "no such file")
    (files / "model.ckpt").write_bytes(b"x")
    one_line_error(
        cli("inpaint", *base, "--model", files / "model.ckpt"), 2, "pickle", "--allow-pickle"
    )
    one_line_error(
        cli("inpaint", *base, "--model", "layerdecomp-tests/absent"), 2, "layerdecomp-tests/absent"
    )
    no_outputs(files)


def test_default_model_says_once_what_it_is(files, sd1_folder, cli):
    from layerdecomp.cli.options import MINI_NOTICE

    args = ["inpaint", str(files / "in.png"), "--mask", str(files / "mask.png"), "--steps", "1"]
    args += ["--iters", "1", "--seed", "0"]
    result = cli(*args, "-o", str(files / "a.png"))
    assert result.exit_code == 0, result.output
    assert result.stderr.count(MINI_NOTICE) == 1 and "--model" in MINI_NOTICE
    quiet = cli(*args, "-q", "-o", str(files / "b.png"))
    assert quiet.exit_code == 0 and MINI_NOTICE not in quiet.stderr
    other = cli(*args, "--model", str(sd1_folder), "-o", str(files / "c.png"))
    assert other.exit_code == 0 and MINI_NOTICE not in other.stderr
