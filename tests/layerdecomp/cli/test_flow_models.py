"""Every command on the rectified-flow models: tiny SD3 and Flux folders through the CLI.

The tasks run unchanged: the backends hand them (B, C, h, w) latents, x̂0 and a codec.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.layerdecomp.constraints.tiny_clip import save_clip_folder

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "2", "--iters", "1", "--seed", "5", "-q"]
DECOMPOSE = ["--updates", "2", "--samples", "2", "--iters", "1", "--runs", "2"]
DECOMPOSE += ["--seed", "3", "-q", "--work-side", "16"]


@pytest.fixture(params=["sd3", "flux"])
def flow_model(request):
    return request.param, request.getfixturevalue(f"{request.param}_folder")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (15, 21, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    mask = Image.new("L", (21, 15), 0)
    mask.paste(255, (5, 4, 14, 11))
    mask.save(tmp_path / "mask.png")
    return tmp_path


def test_inpaint_keeps_the_known_region(files, flow_model, cli):
    kind, folder = flow_model
    out = files / "out.png"
    args = ["--mask", files / "mask.png", "-o", out, "--model", folder, "--prompt", "a cat"]
    args += ["--work-side", "0"]  # the image's own size (the default: the native, 16 px)
    result = cli("inpaint", files / "in.png", *args, "--guidance", "1.5", *FAST)
    assert result.exit_code == 0, result.output
    source = np.asarray(Image.open(files / "in.png"))
    written = np.asarray(Image.open(out))
    keep = np.asarray(Image.open(files / "mask.png")) == 0
    assert written.shape == source.shape
    assert (written[keep] == source[keep]).all() and not (written[~keep] == source[~keep]).all()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["model"]["kind"] == kind and meta["model"]["prediction_type"] == "flow"
    assert meta["work_size"] == [24, 16]  # multiples of 4: VAE factor 2 × patch 2
    assert meta["nfe"] == 2 * (1 + 2)


def test_decompose_recomposes_the_input(tmp_path, flow_model, cli):
    kind, folder = flow_model
    rng = np.random.default_rng(1)
    source = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(source).save(tmp_path / "in.png")
    out = tmp_path / "out"
    args = ["--fg", "a fox face", "--bg", "purple stripes", "--model", folder, "-o", out]
    result = cli("decompose", tmp_path / "in.png", *args, *DECOMPOSE)
    assert result.exit_code == 0, result.output
    fg = np.asarray(Image.open(out / "foreground.png")).astype(float) / 255
    bg = np.asarray(Image.open(out / "background.png")).astype(float) / 255
    m = fg[..., 3:]
    assert fg.shape == (16, 16, 4) and 0 < m.mean() < 1
    assert np.abs(m * fg[..., :3] + (1 - m) * bg - source / 255).max() <= 2 / 255
    meta = json.loads((out / "run.json").read_text())
    assert meta["model"]["kind"] == kind and meta["work_size"] == [16, 16] and meta["nfe"] > 0


def test_superres_and_run(small_images, flow_model, cli):
    kind, folder = flow_model
    out = small_images / "out.png"
    result = cli(
        "superres", small_images / "small.png", "--scale", "4", "-o", out, "--model", folder, *FAST
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (12, 20)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["model"]["kind"] == kind and meta["nfe"] == 2 * (1 + 2)
    ran = small_images / "ran.png"
    result = cli(
        "run",
        "superres",
        f"image={small_images / 'small.png'}",
        f"output={ran}",
        f"model={folder}",
        "scale=4",
        "steps=2",
        "iters=1",
        "seed=5",
        "quiet=true",
    )
    assert result.exit_code == 0, result.output
    meta = json.loads(ran.with_suffix(".json").read_text())
    assert meta["recipe"]["name"] == "superres" and meta["model"]["kind"] == kind


def test_style(small_images, flow_model, tmp_path_factory, cli):
    kind, folder = flow_model
    clip = save_clip_folder(tmp_path_factory.mktemp("clip") / "tiny-clip")
    out = small_images / "out.png"
    args = ["--style", small_images / "ref.png", "--prompt", "a cat", "-o", out]
    args += ["--model", folder, "--clip", clip, "--width", "12", "--height", "16"]
    result = cli("style", *args, *FAST)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (12, 16)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["model"]["kind"] == kind and meta["nfe"] == 2 * (1 + 2)
