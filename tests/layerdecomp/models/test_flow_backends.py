"""Rectified-flow backends (tiny SD3 and Flux saved with save_pretrained, loaded back).

The oracles: x̂0 = x_t − σ·v from the raw velocity; the finite-difference J·e against
``torch.func.jvp`` in float64; the constrained sampler with a zero constraint against diffusers'
own pipeline loop from the same noise; Flux's packing against ``FluxPipeline``'s.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.models.transformers import transformer_flux
from torch.nn.attention import SDPBackend, sdpa_kernel

from layerdecomp.codecs import Codec
from layerdecomp.constraints import Mask
from layerdecomp.models import FluxBackend, SD3Backend, load_model, native_size
from layerdecomp.models.flow import PipelineFlowMatchScheduler
from layerdecomp.models.flux import pack, unpack
from solvers import Denoiser, RefineOptions, SampleOptions, initial_noise, newton, sample

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = {"sd3": SD3Backend, "flux": FluxBackend}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    folder = request.getfixturevalue(f"{request.param}_folder")
    return request.param, load_model(str(folder), device="cpu")


def _noise(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _zero(x0):
    return torch.zeros_like(x0), torch.zeros(x0.shape[0])


def test_load_kind_and_contract(case):
    name, backend = case
    assert isinstance(backend, CASES[name]) and backend.kind == name
    assert backend.prediction_type == "flow" and isinstance(backend, Codec)
    assert isinstance(backend.scheduler, PipelineFlowMatchScheduler)
    assert backend.factor == 2 and backend.size_multiple == 4  # VAE factor 2 × patch 2
    assert backend.latent_shape(2, 16, 24) == (2, 4, 8, 12)
    info = backend.describe()
    assert info["kind"] == name and info["prediction_type"] == "flow"
    assert info["source"] == "folder" and "transformer" in info["attention"]
    # SD3: the transformer's sample size (8) × 2; Flux: FluxPipeline's 128 × 2
    assert native_size(backend) == ((16, 16) if name == "sd3" else (256, 256))


def test_codec_uses_shift_and_scaling(case):
    _, backend = case
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    latent = backend.encode(image)
    vae = backend.pipeline.vae
    mean = vae.encode(image).latent_dist.mean
    expected = (mean - vae.config.shift_factor) * vae.config.scaling_factor
    torch.testing.assert_close(latent, expected)
    decoded = backend.decode(latent)
    z = latent / vae.config.scaling_factor + vae.config.shift_factor
    torch.testing.assert_close(decoded, vae.decode(z).sample)


def test_denoiser_is_x_minus_sigma_v(case):
    _, backend = case
    denoiser = backend.denoiser("a cat")
    assert isinstance(denoiser, Denoiser) and denoiser.prediction_type == "flow"
    x_t = _noise(2, 4, 8, 12)
    with torch.no_grad():
        x0 = denoiser(x_t, torch.tensor(700.0))
        v = denoiser.model_fn(x_t, torch.tensor(700.0))
    torch.testing.assert_close(x0, x_t - 0.7 * v)
    assert not torch.allclose(x0, x_t)


def test_guidance_is_one_batched_call(case):
    """(1 + w)·v_c − w·v_u in ONE transformer call of batch 2B."""
    _, backend = case
    batches = []
    handle = backend.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: batches.append(kwargs["hidden_states"].shape[0]),
        with_kwargs=True,
    )
    x_t, t, w = _noise(3, 4, 8, 8), torch.tensor(400.0), 1.5
    try:
        cond = backend.encode_prompt("a dog", "a cat", guidance=w)
        with torch.no_grad():
            guided = backend.model_fn(cond, w)(x_t, t)
            assert batches == [6]
            v_c = backend.model_fn(type(cond)(cond.embeds, pooled=cond.pooled), 0.0)(x_t, t)
            v_u = backend.model_fn(type(cond)(cond.negative, pooled=cond.negative_pooled), 0.0)(
                x_t, t
            )
    finally:
        handle.remove()
    assert batches == [6, 3, 3]
    torch.testing.assert_close(guided, (1 + w) * v_c - w * v_u, rtol=1e-4, atol=1e-5)


def test_flux_packs_inside_the_backend(flux_folder):
    """The transformer sees FluxPipeline's packed tokens; callers see (B, C, h, w)."""
    from diffusers import FluxPipeline

    backend = load_model(str(flux_folder), device="cpu")
    latents = _noise(2, 4, 8, 12)
    tokens = pack(latents)
    assert tokens.shape == (2, 24, 16)
    torch.testing.assert_close(tokens, FluxPipeline._pack_latents(latents, 2, 4, 8, 12))
    assert torch.equal(unpack(tokens, 8, 12), latents)
    seen = {}
    handle = backend.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(kwargs), with_kwargs=True
    )
    try:
        with torch.no_grad():
            x0 = backend.denoiser("a cat")(latents, torch.tensor(500.0))
    finally:
        handle.remove()
    assert x0.shape == latents.shape and seen["hidden_states"].shape == (2, 24, 16)
    assert seen["img_ids"].shape == (24, 3) and seen["timestep"].tolist() == [0.5, 0.5]
    assert seen["guidance"].tolist() == [3.5, 3.5]  # the embedded guidance, no CFG


def test_flux_shift_depends_on_the_image_size(flux_folder):
    backend = load_model(str(flux_folder), device="cpu")
    scheduler = backend.new_scheduler()
    with pytest.raises(ValueError, match="sample_shape"):
        scheduler.set_timesteps(4)
    scheduler.set_timesteps(4, sample_shape=(1, 4, 8, 8))
    small = scheduler.timesteps.clone()
    scheduler.set_timesteps(4, sample_shape=(1, 4, 128, 128))
    assert small[0] == scheduler.timesteps[0] == 1000.0  # σ = 1 is a fixed point of the shift
    assert (scheduler.timesteps[1:] > small[1:]).all()  # more tokens, more shift


def _rotary_in_x_dtype(x, freqs_cis, use_real=True, use_real_unbind_dim=-1, sequence_dim=2):
    """diffusers' ``apply_rotary_emb`` (Flux's case) without its cast of x to float32."""
    cos, sin = (f.to(x) for f in freqs_cis)
    index = (None, slice(None), None) if sequence_dim == 1 else (None, None, slice(None))
    real, imag = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    return x * cos[index] + torch.stack([-imag, real], dim=-1).flatten(3) * sin[index]


@pytest.mark.parametrize("guidance", [0.0, 1.5])
def test_newton_direction_is_the_jvp_in_float64(case, guidance, monkeypatch):
    """h = (x̂0(x_t + δe) − x̂0(x_t)) / δ equals torch.func.jvp's J·e to 1e-6 (relative).

    Flux's rotary embedding rounds q and k to float32 whatever the dtype; it is swapped for the
    same formula in x's dtype (checked equal in float32 first), so float64 means float64.
    SDPA's fused CPU kernel has no forward-mode AD: the jvp runs on the math kernel.
    """
    name, loaded = case
    q, cos, sin = _noise(2, 5, 3, 8), _noise(5, 8, seed=1), _noise(5, 8, seed=2)
    expected = transformer_flux.apply_rotary_emb(q, (cos, sin), sequence_dim=1)
    torch.testing.assert_close(_rotary_in_x_dtype(q, (cos, sin), sequence_dim=1), expected)
    monkeypatch.setattr(transformer_flux, "apply_rotary_emb", _rotary_in_x_dtype)
    backend = load_model(loaded.spec, device="cpu", dtype=torch.float64)
    denoiser = backend.denoiser("a cat", "a dog", guidance=guidance)
    x_t, e = (
        _noise(2, 4, 8, 8, dtype=torch.float64),
        _noise(2, 4, 8, 8, seed=1, dtype=torch.float64),
    )
    t = torch.tensor(600.0)
    h = newton(denoiser, x_t, t, e, delta0=1e-7, normalize=False).h
    with sdpa_kernel(SDPBackend.MATH):
        _, jv = torch.func.jvp(lambda x: denoiser(x, t), (x_t,), (e,))
    error = float((h - jv).norm() / jv.norm())
    print(f"{name} guidance={guidance}: |J·e (finite difference) − jvp| / |jvp| = {error:.2e}")
    assert error <= 1e-6


@pytest.mark.parametrize("guidance", [0.0, 2.0])
def test_zero_constraint_is_diffusers_loop(case, guidance):
    """The constrained sampler with e = 0 reproduces the pipeline's own flow-matching loop."""
    name, backend = case
    noise, steps = _noise(1, 4, 8, 12, seed=3), 3
    out = sample(
        backend.denoiser("a cat", guidance=guidance, shape=noise.shape),
        _zero,
        noise,
        SampleOptions(steps=steps, refine=RefineOptions(iters=1)),
    )
    kwargs = dict(height=16, width=24, num_inference_steps=steps, output_type="latent")
    pipe = backend.pipeline
    pipe.set_progress_bar_config(disable=True)
    if name == "sd3":  # diffusers' guidance_scale is 1 + w
        reference = pipe("a cat", latents=noise, guidance_scale=1 + guidance, **kwargs).images
    else:  # true CFG (true_cfg_scale = 1 + w) on top of the embedded 3.5
        cfg = {"true_cfg_scale": 1 + guidance, "negative_prompt": ""} if guidance else {}
        tokens = pipe("a cat", latents=pack(noise), guidance_scale=3.5, **cfg, **kwargs).images
        reference = unpack(tokens, 8, 12)
    error = float((out.sample - reference).abs().max())
    print(f"{name} guidance={guidance}: max |sampler − diffusers loop| = {error:.2e}")
    assert error <= 1e-5 * float(reference.abs().max())
    assert out.nfe == steps * (1 + 2)


def test_inpainting_residual_falls(case):
    """Newton iterations pull the known latent cells toward the image's at every step."""
    _, backend = case
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    known = torch.ones(1, 1, 16, 16)
    known[..., 4:12, 4:12] = 0
    generator, shape = torch.Generator().manual_seed(0), backend.latent_shape(1, 16, 16)
    denoiser = backend.denoiser("a cat", shape=shape)
    out = sample(
        denoiser,
        Mask(image, known, codec=backend),
        initial_noise(denoiser.scheduler, shape, generator=generator),
        SampleOptions(steps=3, refine=RefineOptions(iters=3)),
        generator=generator,
    )
    residuals = out.residuals[:, :, 0]
    assert (residuals[:, -1] < residuals[:, 0]).all(), residuals
    assert torch.isfinite(out.sample).all()
