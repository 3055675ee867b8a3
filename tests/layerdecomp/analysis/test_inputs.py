"""The clean latent: the work size a model accepts, an encoded image or a seeded Gaussian."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from PIL import Image

from layerdecomp.analysis import clean_latent, diffuse, work_size
from tests.oracles import ddim_scheduler


def backend(factor: int = 2, multiple: int = 4, sample: int = 8):
    """A stand-in with a UNet of ``sample`` latent pixels (native side sample × factor) whose
    encoder halves the image and keeps its first channel twice."""
    unet = SimpleNamespace(config=SimpleNamespace(sample_size=sample))

    def encode(image):
        return torch.nn.functional.avg_pool2d(image, factor)[:, :2] * 3

    return SimpleNamespace(
        factor=factor,
        size_multiple=multiple,
        pipeline=SimpleNamespace(unet=unet),
        device=torch.device("cpu"),
        encode=encode,
        latent_shape=lambda b, h, w: (b, 2, h // factor, w // factor),
    )


def test_work_size():
    model = backend()
    assert work_size(model, None, None) == (16, 16)  # the native size
    assert work_size(model, None, 30) == (32, 32)  # rounded up to the size multiple
    assert work_size(model, (40, 30), None) == (16, 12)  # longer side native, aspect kept
    assert work_size(model, (30, 41), 20) == (16, 20)
    assert work_size(model, (100, 1), 8) == (8, 4)  # never below one multiple


def test_an_image_is_resized_and_encoded():
    image = Image.new("RGB", (40, 30), (255, 0, 0))
    latent = clean_latent(backend(), image)
    assert latent.shape == (1, 2, 6, 8) and latent.dtype == torch.float32
    torch.testing.assert_close(latent[0, 0], torch.full((6, 8), 3.0))  # red = +1 → ×3
    torch.testing.assert_close(latent[0, 1], torch.full((6, 8), -3.0))  # green = −1


def test_a_random_latent_is_seeded_and_not_the_noise():
    model = backend()
    first, again, other = (clean_latent(model, None, 8, seed=s) for s in (3, 3, 4))
    assert first.shape == (1, 2, 4, 4)
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)
    denoiser = SimpleNamespace(scheduler=ddim_scheduler())
    noise = diffuse(denoiser, torch.zeros_like(first), 999, seed=3)  # x_t ∝ the noise alone
    cosine = torch.nn.functional.cosine_similarity(noise.flatten(), first.flatten(), dim=0)
    assert abs(cosine.item()) < 0.9  # the latent is not the noise it is diffused with
