"""The inpainting API: sizes, exact paste-back, masks as images or tensors, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from layerdecomp.errors import InputError
from layerdecomp.models import load_model
from layerdecomp.tasks.inpaint import inpaint

pytestmark = pytest.mark.usefixtures("one_thread")


def _image(width, height):
    gen = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (height, width, 3), generator=gen, dtype=torch.uint8)
    return Image.fromarray(data.numpy())


def _mask(width, height):
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    return mask


@pytest.fixture(scope="module")
def pixel(pixel_folder):
    return load_model(str(pixel_folder), device="cpu")


def test_odd_size_kept_exactly(pixel):
    image, mask = _image(13, 9), _mask(13, 9)
    out = inpaint(pixel, image, mask, steps=2, iterations=1, seed=3, disable_progress=True)
    assert out.image.size == (13, 9) and out.work_size == (14, 10)
    keep = np.asarray(mask) == 0
    assert (np.asarray(out.image)[keep] == np.asarray(image)[keep]).all()
    assert out.nfe == 2 * 3 and out.residuals.shape == (2, 2, 1)
    meta = out.metadata()
    assert meta["seed"] == 3 and meta["parameters"]["steps"] == 2
    assert len(meta["residuals"]["first"]) == len(meta["residuals"]["last"]) == 2


def test_seed_reproducible_and_raw(pixel):
    image, mask = _image(8, 8), _mask(8, 8)
    a = inpaint(pixel, image, mask, steps=2, iterations=1, seed=7, disable_progress=True)
    b = inpaint(
        pixel, image, mask, steps=2, iterations=1, seed=7, disable_progress=True, paste_back=False
    )
    assert a.raw[0].tobytes() == b.raw[0].tobytes() == b.image.tobytes()
    assert a.image.tobytes() != a.raw[0].tobytes()  # the raw decode differs in the kept area


def test_tensor_mask_and_samples(pixel):
    fill = torch.zeros(8, 8)
    fill[2:6, 2:6] = 1
    out = inpaint(
        pixel,
        _image(8, 8),
        fill,
        steps=1,
        iterations=1,
        num_samples=2,
        seed=0,
        disable_progress=True,
    )
    assert len(out.images) == 2 and out.residuals.shape[-1] == 2
    with pytest.raises(InputError, match="nothing to fill"):
        inpaint(pixel, _image(8, 8), torch.zeros(8, 8), steps=1, disable_progress=True)
    with pytest.raises(InputError, match="does not match"):
        inpaint(pixel, _image(8, 8), _mask(9, 8), steps=1, disable_progress=True)


def test_latent_model_residual_falls(sd1_folder):
    backend = load_model(str(sd1_folder), device="cpu")
    out = inpaint(
        backend, _image(16, 16), _mask(16, 16), steps=3, iterations=2, seed=0, disable_progress=True
    )
    first, last = out.residuals[:, 0, 0], out.residuals[:, -1, 0]
    assert (last < first).all()  # the Newton iterations reduce the constraint residual
