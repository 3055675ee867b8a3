"""``layerdecomp style`` end to end (tiny SD 1.x, tiny CLIP), and bad input."""

from __future__ import annotations

import json

import pytest
from PIL import Image

import layerdecomp.models as models
from layerdecomp.errors import ModelSpecError
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


def test_style_with_the_hub_unreachable_fails_at_once_in_one_whole_line(
    small_images, monkeypatch, cli, one_line_error, no_outputs, tmp_path
):
    """No network and HF_HUB_OFFLINE unset: the cache is asked, not the hub (no retries), and
    the line names the weights, where they come from and how to give a local copy, uncut."""
    import time

    from huggingface_hub import constants

    from layerdecomp import hub
    from layerdecomp.constraints.clip_style import load_clip

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path))  # open_clip's own cache: ~/.cache/clip
    monkeypatch.setattr(hub, "_connects", lambda host, port: False)
    began = time.perf_counter()
    with pytest.raises(ModelSpecError) as caught:
        load_clip("openai", "ViT-B-16")
    assert time.perf_counter() - began < 1.0
    message = str(caught.value)
    assert "ViT-B-16" in message and "timm/vit_base_patch16_clip_224.openai" in message
    assert "cannot be reached" in message and message.endswith("an open_clip folder)")
    loads = []
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loads.append(a))
    ref, out = small_images / "ref.png", small_images / "out.png"
    result = cli("style", "--style", ref, "--prompt", "x", "-o", out)
    one_line_error(result, 2, "--clip 'openai'", "cannot be reached", "--clip PATH")
    assert loads == [] and "Retry" not in result.output
    no_outputs(small_images)
