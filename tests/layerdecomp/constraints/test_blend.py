"""The blend constraint: exact adjoint for pixel models, decoder backprop for latent ones."""

import pytest
import torch
import torch.nn.functional as F

from layerdecomp.constraints import Blend, build


def blend(mask, layer1, layer2):
    """x = m·x¹ + (1−m)·x²: the two-layer model."""
    return mask * layer1 + (1 - mask) * layer2


def test_error_is_the_adjoint_of_the_blend_operator():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1
    mask = torch.rand(1, 1, 8, 8, generator=g)
    x0 = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float32)
    e, residual = build("blend", image=image, mask=mask)(x0)
    diff = image - blend(mask, x0[:1], x0[1:])
    assert torch.allclose(e[:1], mask * diff, atol=1e-6)
    assert torch.allclose(e[1:], (1 - mask) * diff, atol=1e-6)
    assert torch.allclose(residual, diff.pow(2).mean().sqrt().repeat(2))


class UpsampleCodec:
    """A differentiable, linear stand-in for a VAE decoder (factor 2)."""

    factor = 2

    def encode(self, image):
        return F.avg_pool2d(image, 2)

    def decode(self, latent):
        return F.interpolate(latent, scale_factor=2, mode="bilinear", align_corners=False)


def test_latent_layers_are_driven_to_recompose_the_image():
    g = torch.Generator().manual_seed(1)
    codec = UpsampleCodec()
    layer1, layer2 = torch.rand(2, 1, 3, 8, 8, generator=g) * 2 - 1
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1.0
    image = blend(mask, codec.decode(layer1), codec.decode(layer2))
    constraint = Blend(image, mask, codec=codec)
    z = torch.zeros(2, 3, 8, 8)
    residuals = []
    for _ in range(50):
        e, r = constraint(z)
        residuals.append(r[0].item())
        z = z + 0.2 * e  # ‖DᵀD‖ ≈ 4 for ×2 upsampling
    assert residuals[-1] < 0.1 * residuals[0]
    assert all(b <= a for a, b in zip(residuals, residuals[1:], strict=False))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image=torch.zeros(3, 8, 8), mask=torch.ones(1, 1, 8, 8)), "^image"),
        (dict(image=torch.zeros(1, 3, 8, 8), mask=torch.ones(1, 2, 8, 8)), "^mask"),
        (dict(image=torch.zeros(1, 3, 8, 8), mask=torch.ones(1, 1, 4, 4)), "^mask: size"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Blend(**kwargs)


def test_odd_batches_are_refused():
    with pytest.raises(ValueError, match="^x0: the batch"):
        Blend(torch.zeros(1, 3, 4, 4), torch.ones(1, 1, 4, 4))(torch.zeros(3, 3, 4, 4))
