"""``layerdecomp constrain`` / ``run NAME``: built-ins from one image, refusals, NaN, size notes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import layerdecomp.models as models
from layerdecomp.constraints import Constraint, registry

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["steps=2", "iters=1", "seed=0", "quiet=true"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    mask = Image.new("L", (10, 12), 0)
    mask.paste(255, (2, 2, 7, 8))
    mask.save(tmp_path / "holes.png")
    return tmp_path


def test_run_mask_takes_the_mask_and_keeps_the_rest(files, sd1_folder, cli):
    out = files / "out.png"
    args = [f"image={files / 'in.png'}", f"output={out}", f"mask={files / 'holes.png'}"]
    result = cli("run", "mask", *args, f"model={sd1_folder}", *FAST)
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "constrain" and meta["task"] == "mask"
    assert meta["parameters"]["constraint_arguments"] == {"mask": str(files / "holes.png")}
    assert Image.open(out).size == (10, 12)


def test_blend_is_refused_with_the_reason(files, cli, one_line_error, no_outputs, sd1_folder):
    result = cli(
        "run",
        "blend",
        f"image={files / 'in.png'}",
        f"output={files / 'out.png'}",
        f"model={sd1_folder}",
        *FAST,
    )
    one_line_error(result, 1, "constraint 'blend' cannot run on one image", "holds both layers")
    no_outputs(files)


def test_mask_without_a_mask_says_how_to_give_it(files, cli, one_line_error, sd1_folder):
    result = cli(
        "constrain", "mask", files / "in.png", "-o", files / "out.png", "--model", sd1_folder, "-q"
    )
    one_line_error(result, 1, "mask=PATH")


class NaNError(Constraint):
    """Test constraint whose error turns NaN."""

    def __init__(self, image, codec=None):
        self.image = image

    def error(self, x0):
        return torch.full_like(x0, float("nan")), torch.zeros(x0.shape[0])


@pytest.fixture
def nan_constraint(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("nan_error")(NaNError)


def test_a_nan_constraint_error_stops_the_run_and_writes_nothing(
    files, sd1_folder, cli, one_line_error, no_outputs, nan_constraint
):
    result = cli(
        "constrain",
        "nan_error",
        files / "in.png",
        "-o",
        files / "out.png",
        "--model",
        sd1_folder,
        "--steps",
        "2",
        "--iters",
        "1",
        "-q",
    )
    one_line_error(
        result, 1, "the constraint error e is NaN/Inf", "timestep", "nothing was written"
    )
    no_outputs(files)


@pytest.fixture
def nan_model(monkeypatch, sd1_folder):
    """The tiny SD whose UNet output turns NaN (a float16 overflow, say)."""
    load = models.load_model

    def load_model(spec, **kwargs):
        backend = load(str(sd1_folder), **kwargs)
        backend.unet.register_forward_hook(lambda module, args, out: (out[0] * float("nan"),))
        return backend

    monkeypatch.setattr(models, "load_model", load_model)


def test_a_nan_model_output_stops_inpainting_and_writes_nothing(
    files, cli, one_line_error, no_outputs, nan_model
):
    result = cli(
        "inpaint",
        files / "in.png",
        "--mask",
        files / "holes.png",
        "-o",
        files / "out.png",
        "--steps",
        "2",
        "--iters",
        "1",
        "-q",
    )
    one_line_error(result, 1, "x̂0 is NaN/Inf", "step 1 of 2", "nothing was written")
    no_outputs(files)


def test_a_nan_decode_is_refused_before_any_pixel(
    files, cli, one_line_error, no_outputs, monkeypatch, sd1_folder
):
    load = models.load_model

    def load_model(spec, **kwargs):
        backend = load(str(sd1_folder), **kwargs)
        backend.decode = lambda z: torch.full(
            (z.shape[0], 3, *(2 * s for s in z.shape[-2:])), torch.nan
        )
        return backend

    monkeypatch.setattr(models, "load_model", load_model)
    result = cli(
        "inpaint",
        files / "in.png",
        "--mask",
        files / "holes.png",
        "-o",
        files / "out.png",
        "--steps",
        "1",
        "--iters",
        "1",
        "-q",
    )
    one_line_error(result, 1, "the decoded sample holds NaN or Inf", "--dtype float32")
    no_outputs(files)


def test_work_far_above_the_native_size_is_announced_with_the_tile_hint(files, cli, sd1_folder):
    # tiny SD: native 16×16 px; ×4 of 10×12 is 40×48, 7.5× the pixels
    args = [
        files / "in.png",
        "-o",
        files / "out.png",
        "--model",
        sd1_folder,
        "--steps",
        "1",
        "--iters",
        "1",
        "-q",
        "--scale",
        "4",
    ]
    result = cli("superres", *args)
    assert result.exit_code == 0, result.output
    assert (
        "note: superres works at 40x48 px, 8x the pixels of the model's native 16x16"
        in (result.stderr)
        and "--tile 16" in result.stderr
    )
    tiled = cli("superres", *args, "--tile", "16", "--overwrite")
    assert tiled.exit_code == 0 and "note:" not in tiled.stderr
    assert json.loads((files / "out.json").read_text())["parameters"]["tiles"] > 1


def test_clip_style_runs_with_the_image_as_its_reference(files, sd1_folder, cli, tmp_path):
    from tests.layerdecomp.constraints.tiny_clip import save_clip_folder

    clip = save_clip_folder(tmp_path / "tiny-clip")
    out = files / "out.png"
    result = cli(
        "constrain",
        "clip_style",
        files / "in.png",
        "-o",
        out,
        "--model",
        sd1_folder,
        "--arg",
        f"clip={clip}",
        "--arg",
        "block=1",
        "--steps",
        "1",
        "--iters",
        "1",
        "-q",
    )
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["parameters"]["constraint_arguments"] == {"clip": str(clip), "block": 1}
    assert meta["nfe"] == 1 + 2 and meta["backward"] == 0
