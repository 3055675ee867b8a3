"""Layers: visible shares and stacking alphas describe the same picture."""

import pytest
import torch

from layerdecomp.layers import Layers, alphas_from_shares, composite_over, shares_from_alphas


def random_shares(count: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shares = torch.softmax(torch.randn(count, 1, 6, 5, generator=g) * 3, 0)
    shares[:, :, 0, 0] = torch.eye(count)[0].view(count, 1)  # the front layer covers it all
    return shares


@pytest.mark.parametrize("count", [2, 3, 5])
def test_alphas_and_shares_round_trip_and_composite_alike(count):
    shares = random_shares(count)
    alphas = alphas_from_shares(shares)
    assert alphas.min() >= 0 and alphas.max() <= 1 and bool((alphas[-1] == 1).all())
    assert torch.allclose(shares_from_alphas(alphas), shares, atol=1e-6)
    images = torch.rand(count, 3, 6, 5, generator=torch.Generator().manual_seed(1)) * 2 - 1
    layers = Layers(images, shares, prompts=[f"p{i}" for i in range(count)])
    assert torch.allclose(composite_over(images, alphas), layers.recomposition, atol=1e-6)
    assert torch.allclose(layers.alphas, alphas)


def test_two_layers_keep_the_two_layer_names():
    g = torch.Generator().manual_seed(2)
    fg, bg = torch.rand(2, 1, 3, 4, 4, generator=g).unbind(0)
    mask = torch.rand(1, 1, 4, 4, generator=g)
    layers = Layers.two(fg, bg, mask, order=[1, 0])
    assert torch.equal(layers.foreground, fg) and torch.equal(layers.background, bg)
    assert torch.equal(layers.mask, mask) and layers.swapped and layers.count == 2
    assert torch.allclose(layers.recomposition, mask * fg + (1 - mask) * bg)
    assert torch.allclose(layers.alphas[0], mask[0])


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="^masks"):
        Layers(torch.zeros(3, 3, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="^images"):
        Layers(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="^prompts"):
        Layers(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 4), prompts=["a"])
