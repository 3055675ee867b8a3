"""The tensor renderer against the CPU renderer, picture by picture, and its device draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layerdecomp.data.composites import SCALE_RANGE, make_composite
from layerdecomp.data.tensor_render import build_atlas, cpu_draws, draw, render
from layerdecomp.data.textures import FAMILIES

SIZE = 32


@pytest.fixture(scope="module")
def atlas():
    return build_atlas("train", SIZE)


def test_tensor_render_equals_the_cpu_renderer_up_to_resampling(atlas):
    indices = list(range(48))
    d = cpu_draws(indices, "train", SIZE)
    images, alphas = render(atlas, d, SIZE)
    assert images.shape == (48, 3, SIZE, SIZE) and images.dtype == torch.uint8
    seen = set()
    for i in indices:
        c = make_composite(i, "train", SIZE)
        family = FAMILIES[int(d.family[i])]
        seen.add(family)
        diff = np.abs(images[i].permute(1, 2, 0).numpy().astype(int) - c.image.astype(int))
        np.testing.assert_array_equal(alphas[i].numpy(), c.alpha)  # the same sprite, same place
        if family == "noise":  # torch's bicubic kernel (a = -0.75) against Pillow's (-0.5)
            assert diff.mean() <= 3 and diff.max() <= 24, (i, diff.max())
        else:  # float rounding only
            assert diff.max() <= 1, (i, family, diff.max())
    assert seen == set(FAMILIES)


def test_device_draws_are_seeded_and_in_range(atlas):
    first = draw(atlas, 512, SIZE, torch.Generator().manual_seed(0))
    again = draw(atlas, 512, SIZE, torch.Generator().manual_seed(0))
    assert all(
        torch.equal(getattr(first, k), getattr(again, k)) for k in ("emoji", "left", "grain")
    )
    shares = torch.bincount(first.family, minlength=len(FAMILIES)) / 512
    assert shares.min() > 0.1 and shares.max() < 0.25
    scale = first.longest.float() / SIZE
    assert scale.min() >= SCALE_RANGE[0] - 0.02 and scale.max() <= SCALE_RANGE[1] + 0.02
    assert (first.base >= 0).all() and (first.base <= 255).all()
    images, alphas = render(atlas, first, SIZE)
    assert images.dtype == torch.uint8 and images.shape == (512, 3, SIZE, SIZE)
    visible = (alphas > 0).flatten(1).float().mean(1)
    assert (visible > 0.02).all()  # every emoji lands (mostly) inside the picture
