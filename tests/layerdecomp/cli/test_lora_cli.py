"""``--lora FILE[:SCALE]`` on the command line: end to end on the tiny SD 1.x folder, recorded in
run.json, and a bad entry refused in one line before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.layerdecomp.models.test_lora import make_lora

pytestmark = pytest.mark.usefixtures("one_thread")

DECOMPOSE = ["--fg", "a cat", "--bg", "a dog", "--updates", "1", "--samples", "1"]
DECOMPOSE += ["--iters", "1", "--runs", "1", "--final-samples", "1", "--no-matting"]
DECOMPOSE += ["--seed", "3", "--work-side", "16", "-q"]


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def lora(tmp_path_factory, sd1_folder):
    return make_lora(tmp_path_factory.mktemp("lora"), sd1_folder)


def test_decompose_with_a_lora_end_to_end(tmp_path, image, sd1_folder, lora, cli):
    entry = f"{lora}:0.8"
    runs = {}
    for name, extra in (("plain", []), ("lora", ["--lora", entry])):
        out = tmp_path / name
        result = cli("decompose", image, "--model", sd1_folder, "-o", out, *DECOMPOSE, *extra)
        assert result.exit_code == 0, result.output
        runs[name] = (np.asarray(Image.open(out / "foreground.png")), out / "run.json")
    meta = json.loads(runs["lora"][1].read_text())
    assert meta["parameters"]["lora"] == [entry]
    assert meta["fingerprint"]["lora"] == [entry]
    assert meta["model"]["lora"] == [{"path": str(lora), "scale": 0.8}]
    assert "lora" not in json.loads(runs["plain"][1].read_text())["model"]
    assert not np.array_equal(runs["lora"][0], runs["plain"][0])


def test_a_missing_lora_is_one_line(tmp_path, image, sd1_folder, cli, one_line_error):
    out = tmp_path / "out"
    missing = tmp_path / "nowhere.safetensors"
    args = ["--model", sd1_folder, "-o", out, "--lora", f"{missing}:0.5"]
    result = cli("decompose", image, *args, *DECOMPOSE)
    one_line_error(result, 2, f"lora {str(missing)!r}: no such file or folder")
    assert not out.exists()
