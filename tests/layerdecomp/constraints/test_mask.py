"""The mask constraint: latent reduction, e = Aᵀ(y − A·x̂0), composition, residual decrease."""

import copy

import pytest
import torch
import torch.nn.functional as F

from layerdecomp.codecs import IdentityCodec
from layerdecomp.constraints import Mask, build, latent_mask


class PoolCodec:
    """A linear stand-in for a VAE: 4× average pooling, scaled."""

    factor = 4

    def encode(self, image):
        return 0.5 * F.avg_pool2d(image, 4)

    def decode(self, latent):
        return F.interpolate(2.0 * latent, scale_factor=4, mode="nearest")


def test_latent_mask_keeps_only_fully_known_cells():
    known = torch.zeros(1, 1, 16, 16)
    known[..., :, :10] = 1  # columns 8–9 make cell column 2 only partly known
    cells = latent_mask(known, 4)
    assert cells.shape == (1, 1, 4, 4)
    assert cells[0, 0, 0].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert torch.equal(latent_mask(known, 1), known)


def test_error_and_residual_of_a_pixel_mask():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    known = (torch.rand(2, 1, 16, 16, generator=g) > 0.5).float()
    constraint = build("mask", image=image, known=known, codec=IdentityCodec())
    x0 = torch.randn(2, 3, 16, 16, generator=g)
    e, residual = constraint(x0)
    assert torch.equal(e, known * (image - x0))
    expected = ((known * (image - x0)) ** 2).flatten(1).sum(1) / (3 * known.flatten(1).sum(1))
    assert torch.allclose(residual, expected.sqrt())


def random_known(generator, factor):
    """A pixel mask with fully known, fully unknown and partly known factor×factor cells."""
    cells = (torch.rand(2, 1, 16 // factor, 16 // factor, generator=generator) > 0.4).double()
    known = cells.repeat_interleave(factor, -2).repeat_interleave(factor, -1)
    holes = torch.rand(known.shape, generator=generator, dtype=torch.float64) > 0.9
    return known.masked_fill(holes, 0.0)


@pytest.mark.parametrize("codec", [IdentityCodec(), PoolCodec()], ids=["factor1", "pool4"])
def test_error_is_the_adjoint_of_the_masking_operator(codec):
    """⟨A·x, v⟩ = ⟨x, Aᵀ·v⟩, with Aᵀ read off the constraint's own e = Aᵀ(y − A·x̂0).

    A is the masking operator in model space, written out here from the definition (a cell is
    known only if every pixel under it is); the constraint's error with its measurement set to v
    and x̂0 = 0 is Aᵀ·v. Random v is not in A's range (as a latent measurement of a partly known
    cell is not), so an error that forgot Aᵀ on y, or used another mask, fails.
    """
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    known = random_known(g, codec.factor)
    constraint = Mask(image, known, codec=codec)
    f = codec.factor
    cells = known if f == 1 else (F.avg_pool2d(known, f) == 1).double()
    assert 0 < cells.mean() < known.mean() or f == 1  # some partly known cells are dropped

    def forward(x):  # A
        return cells * x

    def adjoint(v):  # Aᵀ, through the constraint's error
        probe = copy.copy(constraint)
        probe.y = v
        return probe(torch.zeros_like(v))[0]

    shape = constraint.y.shape
    for _ in range(3):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        v = torch.randn(shape, generator=g, dtype=torch.float64)
        lhs, rhs = (forward(x) * v).sum(), (x * adjoint(v)).sum()
        assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12), (lhs, rhs)
        # and the error at any x̂0 is Aᵀ(y − A·x̂0)
        e, _ = constraint(x)
        assert torch.allclose(e, adjoint(constraint.y - forward(x)), atol=1e-12)
    assert not torch.allclose(adjoint(v), v)  # A is not the identity here


def test_latent_measurement_uses_the_codec():
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    known = torch.zeros(1, 1, 16, 16)
    known[..., :8] = 1
    constraint = Mask(image, known, codec=PoolCodec())
    assert torch.allclose(constraint.y, PoolCodec().encode(image * known))
    e, _ = constraint(torch.zeros(1, 3, 4, 4))
    assert torch.equal(e[..., 2:], torch.zeros(1, 3, 4, 2))  # unknown cells get no error
    assert torch.allclose(e[..., :2], constraint.y[..., :2])


def test_composition_weights_errors_and_residuals():
    image = torch.ones(1, 1, 4, 4)
    a = Mask(image, torch.ones(1, 1, 4, 4))
    b = Mask.in_model_space(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4))
    combined = 0.25 * a + 2.0 * b
    e, r = combined(torch.full((1, 1, 4, 4), 0.5))
    assert torch.allclose(e, torch.full((1, 1, 4, 4), 0.25 * 0.5 - 2.0 * 0.5))
    assert torch.allclose(r, torch.tensor([0.25 * 0.5 + 2.0 * 0.5]))
    assert len((combined + a).terms) == 3


def test_residual_falls_with_newton_steps_on_an_exact_model():
    """On an identity-Jacobian model, x_t ← x_t + λ·e drives the residual down geometrically."""
    image = torch.rand(1, 3, 8, 8) * 2 - 1
    known = torch.zeros(1, 1, 8, 8)
    known[..., 2:6, 2:6] = 1
    constraint = Mask(image, known)
    x = torch.zeros(1, 3, 8, 8)
    residuals = []
    for _ in range(5):
        e, r = constraint(x)
        residuals.append(r.item())
        x = x + 0.5 * e
    assert all(b < a for a, b in zip(residuals, residuals[1:], strict=False))
    assert residuals[-1] == pytest.approx(residuals[0] * 0.5**4, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image=torch.zeros(3, 8, 8), known=torch.ones(1, 1, 8, 8)), "^image"),
        (dict(image=torch.zeros(1, 3, 8, 8), known=torch.ones(1, 3, 8, 8)), "^known"),
        (dict(image=torch.zeros(1, 3, 8, 8), known=torch.ones(1, 1, 4, 4)), "^known: size"),
        (
            dict(
                image=torch.zeros(1, 3, 10, 10), known=torch.ones(1, 1, 10, 10), codec=PoolCodec()
            ),
            "^image: size",
        ),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Mask(**kwargs)


def test_x0_of_another_size_is_refused():
    constraint = Mask(torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="^x0: size"):
        constraint(torch.zeros(1, 3, 4, 4))
