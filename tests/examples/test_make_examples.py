"""The examples and their truth: ``examples/make_examples.py`` gives back the committed files, and
the truth recomposes each example (the examples' ground truth cannot be lost again)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _script():
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_the_script_reproduces_the_committed_examples_and_truth(tmp_path):
    _script().main(tmp_path)
    records = json.loads((tmp_path / "examples.json").read_text())
    assert records == json.loads((EXAMPLES / "examples.json").read_text())
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    assert made == sorted(
        p.relative_to(EXAMPLES) for p in EXAMPLES.rglob("*.png") if "plugins" not in p.parts
    )
    for name in made:
        assert np.array_equal(_pixels(tmp_path / name), _pixels(EXAMPLES / name)), name


def test_the_truth_recomposes_each_example():
    for record in json.loads((EXAMPLES / "examples.json").read_text()):
        image = _pixels(EXAMPLES / record["image"]).astype(np.float64)
        out = _pixels(EXAMPLES / record["truth"]["background"]).astype(np.float64)
        layers = [_pixels(EXAMPLES / name).astype(np.float64) for name in record["truth"]["layers"]]
        prompts = record["fg"] if isinstance(record["fg"], list) else [record["fg"]]
        assert len(layers) == len(prompts)
        for layer in reversed(layers):  # back to front
            alpha = layer[..., 3:] / 255
            out = alpha * layer[..., :3] + (1 - alpha) * out
        assert np.abs(out - image).max() <= 1.0, record["image"]
        assert (layers[0][..., 3] > 0).mean() > 0.05  # the object is there
