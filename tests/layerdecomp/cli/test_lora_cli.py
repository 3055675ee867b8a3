"""``--lora FILE[:SCALE]`` on the command line: end to end on the tiny SD 1.x folder, recorded in
run.json, and a bad entry refused in one line before anything is written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from layerdecomp.runs import file_sha256
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


def test_decompose_with_a_lora_end_to_end(tmp_path, image, sd1_folder, lora, cli, one_line_error):
    """Recorded by path for people, fingerprinted by content: the same bytes elsewhere are the
    same run (skipped), a LoRA retrained into the same file is another (refused)."""
    mine = tmp_path / "style.safetensors"
    shutil.copyfile(lora, mine)
    entry = f"{mine}:0.8"
    runs = {}
    for name, extra in (("plain", []), ("lora", ["--lora", entry])):
        out = tmp_path / name
        result = cli("decompose", image, "--model", sd1_folder, "-o", out, *DECOMPOSE, *extra)
        assert result.exit_code == 0, result.output
        runs[name] = (np.asarray(Image.open(out / "foreground.png")), out / "run.json")
    record = runs["lora"][1].read_text()
    meta = json.loads(record)
    assert meta["parameters"]["lora"] == [entry]
    assert meta["fingerprint"]["lora"] == [f"{file_sha256(lora)}:0.8"]
    assert meta["model"]["lora"] == [{"path": str(mine), "scale": 0.8}]
    assert "lora" not in json.loads(runs["plain"][1].read_text())["model"]
    assert not np.array_equal(runs["lora"][0], runs["plain"][0])
    out = ["--model", sd1_folder, "-o", tmp_path / "lora", *DECOMPOSE]
    moved = tmp_path / "moved" / "renamed.safetensors"
    moved.parent.mkdir()
    shutil.copyfile(lora, moved)
    result = cli("decompose", image, *out, "--lora", f"{moved}:0.80")
    assert result.exit_code == 0, result.output
    assert runs["lora"][1].read_text() == record  # skipped: the same weights at the same scale
    weights = load_file(mine)
    save_file({k: v * 2 if "lora_B" in k else v for k, v in weights.items()}, mine)  # retrained
    result = cli("decompose", image, *out, "--lora", entry)
    one_line_error(result, 1, "made with other LoRA adapters (sha256 ", "--overwrite")
    assert runs["lora"][1].read_text() == record


def test_a_missing_lora_is_one_line(tmp_path, image, sd1_folder, cli, one_line_error):
    out = tmp_path / "out"
    missing = tmp_path / "nowhere.safetensors"
    args = ["--model", sd1_folder, "-o", out, "--lora", f"{missing}:0.5"]
    result = cli("decompose", image, *args, *DECOMPOSE)
    one_line_error(result, 2, f"lora {str(missing)!r}: no such file or folder")
    assert not out.exists()
