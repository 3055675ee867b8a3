"""SDXL end to end through the CLI (tiny SDXL: two text encoders, pooled embeddings, time ids)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "2", "--iters", "1", "--seed", "5", "-q"]


def test_sdxl_inpaint_decompose_and_superres(tmp_path, sdxl_folder, cli):
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (15, 21, 3), dtype=np.uint8)
    Image.fromarray(source).save(tmp_path / "in.png")
    mask = Image.new("L", (21, 15), 0)
    mask.paste(255, (5, 4, 14, 11))
    mask.save(tmp_path / "mask.png")

    out = tmp_path / "out.png"
    args = ["--mask", tmp_path / "mask.png", "-o", out, "--model", sdxl_folder]
    result = cli(
        "inpaint", tmp_path / "in.png", *args, "--prompt", "a cat", "--guidance", "2", *FAST
    )
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(out))
    keep = np.asarray(mask) == 0
    assert (written[keep] == source[keep]).all() and not (written[~keep] == source[~keep]).all()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["model"]["kind"] == "sdxl" and meta["parameters"]["guidance"] == 2.0
    assert meta["model"]["pipeline"] == "StableDiffusionXLPipeline"
    assert meta["nfe"] == 2 * (1 + 2)

    layers = tmp_path / "layers"
    args = ["--fg", "a cat", "--bg", "a dog", "--model", sdxl_folder, "-o", layers, "-q"]
    args += ["--updates", "2", "--samples", "2", "--iters", "1", "--runs", "2"]
    result = cli("decompose", tmp_path / "in.png", *args, "--guidance", "1", "--seed", "3")
    assert result.exit_code == 0, result.output
    fg = np.asarray(Image.open(layers / "foreground.png")).astype(float) / 255
    bg = np.asarray(Image.open(layers / "background.png")).astype(float) / 255
    m = fg[..., 3:]
    assert fg.shape == (15, 21, 4)
    assert np.abs(m * fg[..., :3] + (1 - m) * bg - source / 255).max() <= 2 / 255
    run = json.loads((layers / "run.json").read_text())
    assert run["model"]["kind"] == "sdxl" and run["parameters"]["guidance"] == 1.0

    big = tmp_path / "big.png"
    args = ["--scale", "2", "-o", big, "--model", sdxl_folder, *FAST]
    result = cli("superres", tmp_path / "in.png", *args)
    assert result.exit_code == 0, result.output
    assert Image.open(big).size == (42, 30)
