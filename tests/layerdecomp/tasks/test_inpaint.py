"""The inpainting API: sizes, exact paste-back, masks as images or tensors, batches of samples
and batches of images (``inpaint_batch``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from layerdecomp.errors import InputError
from layerdecomp.models import load_model
from layerdecomp.tasks.inpaint import inpaint, inpaint_batch

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
    out = inpaint(pixel, image, mask, steps=2, iters=1, seed=3, disable_progress=True)
    assert out.image.size == (13, 9) and out.work_size == (16, 12)  # at the native 16 px
    keep = np.asarray(mask) == 0
    assert (np.asarray(out.image)[keep] == np.asarray(image)[keep]).all()
    assert out.nfe == 2 * 3 and out.residuals.shape == (2, 2, 1)
    meta = out.record()
    assert meta["seed"] == 3 and meta["parameters"]["steps"] == 2
    assert len(meta["residuals"]["first"]) == len(meta["residuals"]["last"]) == 2


def test_seed_reproducible_and_raw(pixel):
    image, mask = _image(8, 8), _mask(8, 8)
    a = inpaint(pixel, image, mask, steps=2, iters=1, seed=7, disable_progress=True)
    b = inpaint(
        pixel, image, mask, steps=2, iters=1, seed=7, disable_progress=True, paste_back=False
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
        iters=1,
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
        backend, _image(16, 16), _mask(16, 16), steps=3, iters=2, seed=0, disable_progress=True
    )
    first, last = out.residuals[:, 0, 0], out.residuals[:, -1, 0]
    assert (last < first).all()  # the Newton iterations reduce the constraint residual


def _shifted_mask(width, height, shift):
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (shift, 2, width // 2 + shift, height - 3))
    return mask


def test_a_batch_of_one_is_inpaint_bit_for_bit(sd1_folder):
    backend = load_model(str(sd1_folder), device="cpu")
    image, mask = _image(13, 9), _mask(13, 9)  # resized to 16×16 and back
    kwargs = {"steps": 2, "iters": 1, "seed": 3, "disable_progress": True}
    alone = inpaint(backend, image, mask, **kwargs)
    (batched,) = inpaint_batch(backend, [image], [mask], **kwargs)
    assert batched.raw[0].tobytes() == alone.raw[0].tobytes()
    assert batched.image.tobytes() == alone.image.tobytes()
    assert torch.equal(batched.residuals, alone.residuals) and batched.nfe == alone.nfe
    assert batched.record()["parameters"]["batch_images"] == 1


def test_a_batch_goes_through_the_denoiser_together(sd1_folder):
    backend = load_model(str(sd1_folder), device="cpu")
    sizes = []
    hook = backend.pipeline.unet.register_forward_pre_hook(
        lambda module, args: sizes.append(args[0].shape[0])
    )
    images = [_image(16, 16).rotate(90 * i) for i in range(3)]
    masks = [_shifted_mask(16, 16, i) for i in range(3)]
    kwargs = {"steps": 2, "iters": 1, "seed": 5, "disable_progress": True}
    try:
        outs = inpaint_batch(backend, images, masks, **kwargs)
        assert sizes and set(sizes) == {3}  # every call of the network takes the three
        sizes.clear()
        alone = [inpaint(backend, im, m, **kwargs) for im, m in zip(images, masks, strict=True)]
        assert set(sizes) == {1}
    finally:
        hook.remove()
    for out, single, image, mask in zip(outs, alone, images, masks, strict=True):
        keep = np.asarray(mask) == 0
        assert (np.asarray(out.image)[keep] == np.asarray(image)[keep]).all()
        difference = np.abs(np.asarray(out.raw[0], int) - np.asarray(single.raw[0], int))
        assert difference.max() <= 2  # the batched network's rounding, nothing else
        assert out.residuals.shape == single.residuals.shape == (2, 2, 1)
        assert torch.allclose(out.residuals, single.residuals, rtol=1e-3, atol=1e-5)
        assert out.nfe == single.nfe and out.record()["parameters"]["batch_images"] == 3


def test_what_a_batch_refuses(pixel):
    image, mask = _image(8, 8), _mask(8, 8)
    two = ([image, image], [mask, mask])
    with pytest.raises(InputError, match="one size"):
        inpaint_batch(pixel, [image, _image(9, 8)], [mask, _mask(9, 8)], steps=1)
    with pytest.raises(InputError, match="restart"):
        inpaint_batch(pixel, *two, steps=1, restarts=1)
    with pytest.raises(InputError, match="restart"):
        inpaint_batch(pixel, *two, steps=1, eta=0.5)
    with pytest.raises(InputError, match="tile"):
        inpaint_batch(pixel, *two, steps=1, tile=4)
    with pytest.raises(ValueError, match="one per image"):
        inpaint_batch(pixel, *two[:1], [mask], steps=1)
    (out,) = inpaint_batch(pixel, [image], [mask], steps=1, iters=1, restarts=1, seed=0)
    assert out.image.size == (8, 8)  # one image may restart: its noise is its own


def test_an_image_above_the_native_size_is_inpainted_at_it(pixel):
    """#26: beyond its native size a model fills holes with blotches (mini at 128 px): by
    default the work is at the native size (16 px here), the output at the input's size with
    its kept pixels exact; ``work_side=0`` or a tiled run keeps the image's own size."""
    image, mask = _image(32, 24), _mask(32, 24)
    out = inpaint(pixel, image, mask, steps=2, iters=1, seed=3, disable_progress=True)
    assert out.work_size == (16, 12) and out.image.size == (32, 24)
    keep = np.asarray(mask) == 0
    assert (np.asarray(out.image)[keep] == np.asarray(image)[keep]).all()
    own = inpaint(pixel, image, mask, steps=2, iters=1, seed=3, work_side=0, disable_progress=True)
    assert own.work_size == (32, 24)
    tiled = inpaint(pixel, image, mask, steps=2, iters=1, seed=3, tile=16, disable_progress=True)
    assert tiled.work_size == (32, 24) and tiled.parameters["tiles"] > 1
    small = inpaint(pixel, _image(13, 9), _mask(13, 9), steps=2, iters=1, disable_progress=True)
    assert small.work_size == (16, 12)  # below the native size: enlarged to it, as decompose does
