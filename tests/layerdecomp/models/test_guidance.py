"""Classifier-free guidance: cond and uncond in ONE UNet call on a doubled batch."""

from __future__ import annotations

import pytest
import torch

from layerdecomp.models import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


class CallCounter:
    """Wraps a UNet's forward; records the batch size of every call."""

    def __init__(self, unet):
        self.batches: list[int] = []
        self.handle = unet.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.batches.append(args[0].shape[0])


@pytest.fixture(params=["sd1_folder", "sd2_folder", "sdxl_folder"])
def backend(request):
    return load_model(str(request.getfixturevalue(request.param)), device="cpu")


def test_one_unet_call_per_evaluation_with_guidance(backend):
    counter = CallCounter(backend.unet)
    x_t = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        backend.denoiser("a cat", guidance=2.0)(x_t, torch.tensor(400))
        assert counter.batches == [6]
        backend.denoiser("a cat")(x_t, torch.tensor(400))
        assert counter.batches == [6, 3]  # no guidance: the conditional batch alone


def test_guidance_combines_as_paper(backend):
    """(1 + w)·ε_c − w·ε_u, with ε_c and ε_u from separate unguided evaluations."""
    w = 1.5
    x_t = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(600)
    cond = backend.encode_prompt("a dog", "a cat", guidance=w)
    with torch.no_grad():
        guided = backend.model_fn(cond, w)(x_t, t)
        eps_c = backend.model_fn(type(cond)(cond.embeds, None, cond.pooled), 0.0)(x_t, t)
        eps_u = backend.model_fn(type(cond)(cond.negative, None, cond.negative_pooled), 0.0)(x_t, t)
    torch.testing.assert_close(guided, (1 + w) * eps_c - w * eps_u, rtol=1e-4, atol=1e-5)


def test_sampling_with_guidance_counts_calls(sd1_folder):
    """Over a whole constrained run, every NFE is exactly one UNet call of batch 2B."""
    from layerdecomp.constraints import Mask
    from solvers import RefineOptions, SampleOptions, initial_noise, sample

    backend = load_model(str(sd1_folder), device="cpu")
    counter = CallCounter(backend.unet)
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    known = torch.ones(1, 1, 16, 16)
    known[..., :8, :] = 0
    generator, shape = torch.Generator().manual_seed(0), backend.latent_shape(2, 16, 16)
    denoiser = backend.denoiser("a cat", guidance=3.0, shape=shape)
    out = sample(
        denoiser,
        Mask(image, known, codec=backend),
        initial_noise(denoiser.scheduler, shape, generator=generator),
        SampleOptions(steps=2, refine=RefineOptions(iters=2)),
        generator=generator,
    )
    assert len(counter.batches) == out.nfe == 2 * (1 + 2 * 2)
    assert set(counter.batches) == {4}


def test_prompt_list_per_sample(sd1_folder):
    backend = load_model(str(sd1_folder), device="cpu")
    x_t = torch.randn(1, 4, 8, 8).expand(4, -1, -1, -1)
    with torch.no_grad():
        out = backend.denoiser(["a cat", "a dog"])(x_t, torch.tensor(500))
    torch.testing.assert_close(out[0], out[1])  # samples 0, 1 share "a cat"
    assert not torch.allclose(out[1], out[2])  # sample 2 has "a dog"
    with pytest.raises(ValueError, match="multiple"):
        backend.denoiser(["a", "b"])(torch.randn(3, 4, 8, 8), torch.tensor(500))
