"""The downsample constraint: Down/Downᵀ adjointness, decoder backprop, VAE-Newton, sampling."""

import pytest
import torch
import torch.nn.functional as F

import solvers
from layerdecomp.codecs import IdentityCodec
from layerdecomp.constraints import Downsample, build, measure
from layerdecomp.constraints.downsample import downsample, downsample_adjoint
from tests.oracles import ddim_scheduler

pytestmark = pytest.mark.usefixtures("one_thread")


class LinearCodec:
    """A linear, invertible stand-in for a VAE (factor 2): pixel unshuffle and a channel mix."""

    factor = 2

    def __init__(self):
        g = torch.Generator().manual_seed(3)
        self.mix = torch.eye(12) + 0.3 * torch.randn(12, 12, generator=g)
        self.grad_enabled_in_decode: list[bool] = []

    def encode(self, image):
        z = F.pixel_unshuffle(image, 2)
        return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.mix), z)

    def decode(self, latent):
        self.grad_enabled_in_decode.append(torch.is_grad_enabled())
        return F.pixel_shuffle(torch.einsum("ij,bjhw->bihw", self.mix, latent), 2)


def test_downsample_is_linear_and_its_adjoint_is_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 12, generator=g)
    y = torch.randn(2, 3, 4, 3, generator=g)
    assert downsample(x, 4).shape == (2, 3, 4, 3)
    assert downsample(torch.ones(1, 3, 16, 16), 4).sub(1).abs().max() < 1e-5  # keeps constants
    lhs = (downsample(x, 4) * y).sum()
    rhs = (x * downsample_adjoint(y, 4)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-5)  # ⟨Down x, y⟩ = ⟨x, Downᵀ y⟩
    with pytest.raises(ValueError, match="multiple of the scale"):
        downsample(torch.zeros(1, 3, 10, 10), 4)


def test_measure_adds_seeded_noise():
    image = torch.zeros(1, 3, 16, 16)
    clean = measure(image, 4)
    noisy = measure(image, 4, 0.05, torch.Generator().manual_seed(1))
    again = measure(image, 4, 0.05, torch.Generator().manual_seed(1))
    assert torch.equal(clean, torch.zeros(1, 3, 4, 4)) and torch.equal(noisy, again)
    assert 0.02 < noisy.std().item() < 0.1


def test_backprop_error_is_the_adjoint_of_the_residual_for_pixel_models():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 4, 4, generator=g) * 2 - 1
    x0 = torch.randn(2, 3, 16, 16, generator=g)
    e, residual = build("downsample", y=y, scale=4)(x0)
    r = y - downsample(x0, 4)
    assert torch.allclose(e, downsample_adjoint(r, 4), atol=1e-6)
    assert torch.allclose(residual, r.pow(2).flatten(1).mean(1).sqrt())


def test_vae_newton_equals_backprop_on_a_pixel_model_and_jacobian_of_encoder_otherwise():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 3, 4, 4, generator=g) * 2 - 1
    x0 = torch.randn(1, 3, 16, 16, generator=g)
    e_bp, r_bp = Downsample(y, 4, codec=IdentityCodec())(x0)
    e_vn, r_vn = Downsample(y, 4, codec=IdentityCodec(), method="vae_newton")(x0)
    assert torch.allclose(e_bp, e_vn, atol=1e-5) and torch.allclose(r_bp, r_vn)
    # a linear codec: VAE-Newton gives J_E·Downᵀr exactly, decoder backprop J_Dᵀ·Downᵀr
    codec = LinearCodec()
    z = torch.randn(1, 12, 8, 8, generator=g)
    e_vn, _ = Downsample(y, 4, codec=codec, method="vae_newton")(z)
    assert codec.grad_enabled_in_decode == [False]  # no graph anywhere
    e_pix = downsample_adjoint(y - downsample(codec.decode(z), 4), 4)
    assert torch.allclose(e_vn, codec.encode(e_pix), atol=1e-4)
    e_bp, _ = Downsample(y, 4, codec=codec)(z)
    expected = torch.einsum("ji,bjhw->bihw", codec.mix, F.pixel_unshuffle(e_pix, 2))
    assert torch.allclose(e_bp, expected, atol=1e-4)


@pytest.mark.parametrize("method", ["backprop", "vae_newton"])
def test_residual_falls_under_sampling_on_an_exact_model(method):
    """solvers.sample with the downsample constraint on an identity-like denoiser meets y."""
    scheduler = ddim_scheduler()
    truth = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = measure(truth, 4)

    def x0_hat(x_t, t):  # x̂0 = x_t/√ᾱ: the Jacobian is a positive multiple of the identity
        return x_t / scheduler.alphas_cumprod[int(t)].sqrt()

    denoiser = solvers.Denoiser(x0_hat, scheduler, "sample")
    generator = torch.Generator().manual_seed(0)
    out = solvers.sample(
        denoiser,
        Downsample(y, 4, method=method),
        solvers.initial_noise(scheduler, (1, 3, 16, 16), generator=generator),
        solvers.SampleOptions(
            steps=4, refine=solvers.RefineOptions(iters=10, lam="constant:0.1", perturbation=0.01)
        ),
        generator=generator,
    )
    assert out.residuals[-1, -1, 0] < 0.05 * out.residuals[0, 0, 0]  # the paper's λ = 0.1


def test_from_image_measures_the_truth():
    truth = torch.rand(1, 3, 8, 8) * 2 - 1
    constraint = Downsample.from_image(truth, scale=2, noise=0.0, method="vae_newton")
    assert torch.allclose(constraint.y, downsample(truth, 2)) and constraint.method == "vae_newton"
    e, residual = constraint(truth)
    assert residual.item() < 1e-6 and e.abs().max() < 1e-5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(y=torch.zeros(3, 4, 4)), "^y"),
        (dict(y=torch.zeros(1, 3, 4, 4), scale=0), "^scale"),
        (dict(y=torch.zeros(1, 3, 4, 4), method="nope"), "^method"),
        (dict(y=torch.zeros(1, 3, 4, 4), delta=0.0), "^delta"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Downsample(**kwargs)


def test_x0_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="^x0: decodes to size"):
        Downsample(torch.zeros(1, 3, 4, 4), 4)(torch.zeros(1, 3, 8, 8))
