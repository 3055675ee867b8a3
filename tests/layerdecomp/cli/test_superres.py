"""``layerdecomp superres`` end to end (tiny SD 1.x), tiles, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "2", "--iters", "1", "--seed", "3", "-q"]


def test_superres_end_to_end(small_images, sd1_folder, cli):
    out = small_images / "out.png"
    result = cli(
        "superres",
        small_images / "small.png",
        "--scale",
        "4",
        "-o",
        out,
        "--model",
        sd1_folder,
        *FAST,
    )
    assert result.exit_code == 0, result.output
    written = Image.open(out)
    assert written.size == (12, 20) and written.mode == "RGB"
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "superres" and meta["image_mode"] == "L"
    assert meta["size"] == [3, 5] and meta["output_size"] == [12, 20]
    assert meta["work_size"] == [12, 20]  # 4× and a multiple of the tiny VAE's factor 2
    params = meta["parameters"]
    assert params["scale"] == 4 and params["method"] == "backprop" and params["iters"] == 1
    assert params["lam"] == "constant:0.1" and params["seed"] == 3
    assert meta["nfe"] == 2 * (1 + 2) and meta["backward"] == 0
    assert len(meta["residuals"]["per_iteration"]) == 2
    assert set(meta["timings"]) >= {"load", "sample", "total"} and "versions" in meta
    assert "recipe" not in meta


def test_superres_vae_newton_is_reproducible(small_images, sd1_folder, cli):
    outputs = []
    for name in ("out_a.png", "out_b.png"):
        args = ["--method", "vae_newton", "--scale", "2", "--perturbation", "0.05"]
        result = cli(
            "superres",
            small_images / "small.png",
            "-o",
            small_images / name,
            "--model",
            sd1_folder,
            *args,
            *FAST,
        )
        assert result.exit_code == 0, result.output
        outputs.append(np.asarray(Image.open(small_images / name)))
    assert outputs[0].shape == (10, 6, 3) and (outputs[0] == outputs[1]).all()
    meta = json.loads((small_images / "out_a.json").read_text())
    assert meta["parameters"]["method"] == "vae_newton"
    assert meta["parameters"]["perturbation"] == 0.05


def test_bad_inputs(small_images, cli, one_line_error, no_outputs):
    base = ["-o", small_images / "out.png", "--model", "unused"]
    one_line_error(cli("superres", small_images / "missing.png", *base), 1, "no such file")
    (small_images / "text.png").write_text("not an image")
    one_line_error(cli("superres", small_images / "text.png", *base), 1, "not an image file")
    one_line_error(cli("superres", small_images / "small.png", "--scale", "1", *base), 2, "--scale")
    one_line_error(
        cli("superres", small_images / "small.png", "-o", small_images / "text.png" / "out.png"),
        1,
        "is a file, not a folder",
    )
    one_line_error(
        cli("style", "--style", small_images / "missing.png", "--prompt", "x", *base),
        1,
        "style image",
        "no such file",
    )
    one_line_error(
        cli("style", "--style", small_images / "ref.png", *base), 1, "prompt: describe what"
    )
    no_outputs(small_images)
