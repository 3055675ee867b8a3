"""Half precision end to end: ``--dtype bfloat16`` on the CPU (the path GPU users take in
float16), on a UNet model (tiny SD 1.x) and a transformer one (tiny Flux), NaN/Inf checks on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import layerdecomp.models as models

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "2", "--iters", "1", "--seed", "5", "-q", "--dtype", "bfloat16"]
DECOMPOSE = ["--updates", "2", "--samples", "2", "--iters", "1", "--runs", "2"]
DECOMPOSE += ["--seed", "3", "-q", "--work-side", "16", "--dtype", "bfloat16"]


@pytest.fixture(params=["sd1", "flux"])
def model(request):
    return request.param, request.getfixturevalue(f"{request.param}_folder")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (4, 4, 12, 12))
    mask.save(tmp_path / "mask.png")
    return tmp_path


def test_bfloat16_inpaint_and_decompose(files, model, cli):
    kind, folder = model
    out = files / "out.png"
    args = ["--mask", files / "mask.png", "-o", out, "--model", folder, "--prompt", "a cat"]
    result = cli("inpaint", files / "in.png", *args, "--guidance", "1.5", *FAST)
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["dtype"] == "bfloat16" and meta["model"]["dtype"] == "bfloat16"
    source, written = np.asarray(Image.open(files / "in.png")), np.asarray(Image.open(out))
    keep = np.asarray(Image.open(files / "mask.png")) == 0
    assert (written[keep] == source[keep]).all() and not (written[~keep] == source[~keep]).all()
    assert all(np.isfinite(meta["residuals"]["last"]))

    layers = files / "layers"
    args = ["--fg", "a fox face", "--bg", "purple stripes", "--model", folder, "-o", layers]
    result = cli("decompose", files / "in.png", *args, *DECOMPOSE)
    assert result.exit_code == 0, result.output
    assert json.loads((layers / "run.json").read_text())["model"]["dtype"] == "bfloat16"
    fg = np.asarray(Image.open(layers / "foreground.png")).astype(float) / 255
    bg = np.asarray(Image.open(layers / "background.png")).astype(float) / 255
    m = fg[..., 3:]
    assert np.abs(m * fg[..., :3] + (1 - m) * bg - source / 255).max() <= 2 / 255


def test_nan_in_half_precision_stops_the_run(files, model, monkeypatch, cli, one_line_error):
    """A network that overflows (NaN out) in bfloat16: one error line, exit 1, nothing written."""
    kind, folder = model
    real_load = models.load_model

    def overflowing(spec, **kwargs):
        backend = real_load(spec, **kwargs)
        assert backend.dtype == torch.bfloat16
        network = backend.unet if kind == "sd1" else backend.transformer
        network.register_forward_hook(lambda module, args, out: (out[0] * float("nan"),))
        return backend

    monkeypatch.setattr(models, "load_model", overflowing)
    out = files / "out.png"
    args = ["--mask", files / "mask.png", "-o", out, "--model", folder]
    one_line_error(cli("inpaint", files / "in.png", *args, *FAST), 1, "NaN", "x̂0")
    layers = files / "layers"
    args = ["--fg", "a fox", "--bg", "stripes", "--model", folder, "-o", layers]
    one_line_error(cli("decompose", files / "in.png", *args, *DECOMPOSE), 1, "NaN", "x̂0")
    assert sorted(p.name for p in files.iterdir()) == ["in.png", "mask.png"]
