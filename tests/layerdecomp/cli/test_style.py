"""``layerdecomp style`` end to end (tiny SD 1.x, tiny CLIP), and bad input."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.layerdecomp.constraints.tiny_clip import save_clip_folder

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "2", "--iters", "1", "--seed", "3", "-q"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return save_clip_folder(tmp_path_factory.mktemp("clip") / "tiny-clip")


def test_style_end_to_end(small_images, sd1_folder, clip_folder, cli):
    out = small_images / "out.png"
    result = cli(
        "style",
        "--style",
        small_images / "ref.png",
        "--prompt",
        "a cat",
        "-o",
        out,
        "--model",
        sd1_folder,
        "--clip",
        clip_folder,
        "--width",
        "12",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (12, 16)  # width given, height native (8 × factor 2)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "style" and meta["style_size"] == [40, 30]
    params = meta["parameters"]
    assert params["prompt"] == "a cat" and params["guidance"] == 2.0 and params["block"] == 2
    assert params["clip"] == str(clip_folder) and params["lam"] == "linear:0.5:0.1"
    assert meta["nfe"] == 2 * (1 + 2)


def test_style_without_clip_weights_offline_is_one_line(
    small_images, monkeypatch, cli, one_line_error, no_outputs
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = cli(
        "style",
        "--style",
        small_images / "ref.png",
        "--prompt",
        "x",
        "-o",
        small_images / "out.png",
        "--model",
        "unused",
    )
    one_line_error(result, 2, "--clip 'openai'", "offline", "--clip PATH")
    no_outputs(small_images)
