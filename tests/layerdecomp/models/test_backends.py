"""Tiny SD 1.x / 2.x / SDXL / pixel pipelines saved with save_pretrained and loaded back."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from layerdecomp.codecs import Codec
from layerdecomp.constraints import Mask
from layerdecomp.models import PixelBackend, StableDiffusionBackend, load_model
from solvers import Denoiser, RefineOptions, SampleOptions, initial_noise, sample

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = {
    "sd1": ("sd", "epsilon", "StableDiffusionPipeline"),
    "sd2": ("sd", "v_prediction", "StableDiffusionPipeline"),
    "sdxl": ("sdxl", "epsilon", "StableDiffusionXLPipeline"),
    "pixel": ("pixel", "epsilon", "DDPMPipeline"),
}
# model-space shape of a (2, 3, 16, 16) image: the tiny VAEs halve the sides into 4 channels
LATENT_SHAPES = {
    "sd1": (2, 4, 8, 8),
    "sd2": (2, 4, 8, 8),
    "sdxl": (2, 4, 8, 8),
    "pixel": (2, 3, 16, 16),
}
SDPA = "AttnProcessor2_0"  # diffusers' scaled-dot-product processor (torch ≥ 2)


@pytest.fixture(params=list(CASES))
def case(request):
    folder = request.getfixturevalue(f"{request.param}_folder")
    return request.param, load_model(str(folder), device="cpu")


def test_load_kind_and_contract(case):
    name, backend = case
    kind, prediction, pipeline = CASES[name]
    assert backend.kind == kind
    assert backend.prediction_type == prediction
    assert type(backend.pipeline).__name__ == pipeline
    assert isinstance(backend.scheduler, DDIMScheduler)
    assert backend.device == torch.device("cpu") and backend.dtype == torch.float32
    assert isinstance(backend, Codec)
    assert isinstance(backend, PixelBackend if kind == "pixel" else StableDiffusionBackend)
    info = backend.describe()
    assert info["source"] == "folder" and info["prediction_type"] == prediction
    attention = {"unet": SDPA} if kind == "pixel" else {"unet": SDPA, "vae": SDPA}
    assert info["attention"] == attention


def test_codec_shapes_and_scaling(case):
    name, backend = case
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    latent = backend.encode(image)
    assert latent.shape == LATENT_SHAPES[name] == backend.latent_shape(2, 16, 16)
    assert latent.dtype == torch.float32
    decoded = backend.decode(latent)
    assert decoded.shape == image.shape
    if name == "pixel":
        assert torch.equal(latent, image) and torch.equal(decoded, image)
    else:  # encode = latent mean × scaling factor
        vae = backend.pipeline.vae
        mean = vae.encode(image).latent_dist.mean
        torch.testing.assert_close(latent, mean * vae.config.scaling_factor)


@pytest.mark.parametrize("budget", [16 * 16, 3 * 16 * 16, 0])
def test_decode_in_slices_matches_one_call_and_its_gradient(sd1_folder, budget, monkeypatch):
    backend = load_model(str(sd1_folder), device="cpu")
    latent = torch.randn(5, 4, 8, 8, requires_grad=True)  # five 16×16 images
    whole = backend.decode(latent)
    (grad_whole,) = torch.autograd.grad(whole.square().sum(), latent)
    calls = []
    decode = backend.vae.decode
    monkeypatch.setattr(backend.vae, "decode", lambda z: calls.append(len(z)) or decode(z))
    monkeypatch.setattr(backend, "decode_pixels", budget)
    sliced = backend.decode(latent)
    (grad_sliced,) = torch.autograd.grad(sliced.square().sum(), latent)
    assert calls == {16 * 16: [1] * 5, 3 * 16 * 16: [3, 2], 0: [5]}[budget]
    torch.testing.assert_close(sliced, whole)
    torch.testing.assert_close(grad_sliced, grad_whole)


def test_denoiser_is_x0_contract(case):
    """x̂0 from the raw network output by the textbook formulas, with ᾱ_t from the scheduler."""
    name, backend = case
    denoiser = backend.denoiser()
    assert isinstance(denoiser, Denoiser)
    assert denoiser.prediction_type == CASES[name][1]
    x_t = torch.randn(backend.latent_shape(1, 16, 16), generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500)
    with torch.no_grad():
        x0 = denoiser(x_t, t)
        raw = denoiser.model_fn(x_t, t)
    alpha_bar = backend.pipeline.scheduler.alphas_cumprod[500].double()
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    if CASES[name][1] == "epsilon":  # x_t = a·x0 + s·ε
        expected = (x_t.double() - s * raw.double()) / a
    else:  # v = a·ε − s·x0, so x0 = a·x_t − s·v
        expected = a * x_t.double() - s * raw.double()
    torch.testing.assert_close(x0, expected.float(), rtol=1e-4, atol=1e-5)
    assert x0.shape == x_t.shape and torch.isfinite(x0).all()
    assert not torch.allclose(x0, x_t)


def test_inpainting_sample_runs(case):
    """A 2-step, 1-iteration constrained run: finite, NFE as counted by Algorithm 1."""
    _, backend = case
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    known = torch.ones(1, 1, 16, 16)
    known[..., 4:12, 4:12] = 0
    generator, shape = torch.Generator().manual_seed(0), backend.latent_shape(1, 16, 16)
    denoiser = backend.denoiser(shape=shape)
    out = sample(
        denoiser,
        Mask(image, known, codec=backend),
        initial_noise(denoiser.scheduler, shape, generator=generator),
        SampleOptions(steps=2, refine=RefineOptions(iters=1)),
        generator=generator,
    )
    assert out.nfe == 2 * (1 + 2 * 1)
    assert torch.isfinite(out.sample).all()
    assert backend.decode(out.sample).shape == image.shape


def test_sdxl_uses_pooled_embeddings_and_time_ids(sdxl_folder):
    backend = load_model(str(sdxl_folder), device="cpu")
    cond = backend.encode_prompt("a cat", "", guidance=1.0)
    assert cond.pooled is not None and cond.negative_pooled is not None
    assert cond.embeds.shape[-1] == backend.unet.config.cross_attention_dim
    ids = backend._add_time_ids(16, 24)
    assert ids.tolist() == [[16.0, 24.0, 0.0, 0.0, 16.0, 24.0]]
    seen = {}

    def spy(module, args, kwargs):
        seen.update(kwargs["added_cond_kwargs"])

    handle = backend.unet.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        with torch.no_grad():
            backend.denoiser("a cat")(torch.randn(1, 4, 8, 12), torch.tensor(300))
    finally:
        handle.remove()
    assert seen["time_ids"].tolist() == [[16.0, 24.0, 0.0, 0.0, 16.0, 24.0]]
    torch.testing.assert_close(seen["text_embeds"], cond.pooled)


def test_pixel_model_refuses_prompts(pixel_folder):
    from layerdecomp.errors import ModelSpecError

    backend = load_model(str(pixel_folder), device="cpu")
    assert backend.factor == 1 and backend.size_multiple == 2
    with pytest.raises(ModelSpecError, match="unconditional"):
        backend.denoiser(prompt="a cat")
