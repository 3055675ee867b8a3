"""The embedded model ``mini``: packaged fp16 safetensors that load offline and inpaint."""

import json

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from layerdecomp.models import MINI_DIR, load_model
from layerdecomp.tasks.inpaint import inpaint

pytestmark = pytest.mark.usefixtures("one_thread")


def test_weights_are_small_fp16_safetensors():
    files = [p for p in MINI_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 60 * 2**20
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert {p.parent.name for p in weights} >= {"unet", "vae", "text_encoder"}
    assert not [p for p in files if p.suffix in (".bin", ".ckpt", ".pt", ".pth")]
    for path in weights:
        with safe_open(str(path), "pt") as f:
            assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F16"}
    index = json.loads((MINI_DIR / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"


def test_mini_loads_offline_and_inpaints(tmp_path):
    backend = load_model("mini")
    assert backend.kind == "sd" and backend.device.type == "cpu"
    entry = json.loads((MINI_DIR.parents[2] / "examples" / "examples.json").read_text())[0]
    image = Image.open(MINI_DIR.parents[2] / "examples" / entry["image"]).convert("RGB")
    mask = Image.new("L", image.size, 0)
    mask.paste(255, (image.width // 4, image.height // 4, image.width // 2, image.height // 2))
    out = inpaint(
        backend,
        image,
        mask,
        prompt=entry["fg"],
        steps=2,
        iters=1,
        seed=0,
        disable_progress=True,
    )
    assert out.image.size == image.size and out.nfe == 2 * (1 + 2)
    result, original = np.asarray(out.image), np.asarray(image)
    keep = np.asarray(mask) == 0
    assert np.array_equal(result[keep], original[keep])
    assert not np.array_equal(result[~keep], original[~keep])
