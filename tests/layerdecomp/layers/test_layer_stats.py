"""Each layer's per-pixel Gaussian, from one update's samples or with the earlier updates' kept
(``EMOptions.memory``)."""

import pytest
import torch

from layerdecomp.layers.stats import layer_stats
from tests.layerdecomp.toy_backend import disk_image, toy_decompose

FLOOR = 2e-3


def weighted(samples, weights):
    """Weighted mean and variance over dim 1, written out: the oracle."""
    total = weights.sum(1)
    mean = (weights * samples).sum(1) / total
    var = (weights * (samples - mean.unsqueeze(1)) ** 2).sum(1) / total
    return mean, var + FLOOR


def draws(seed):
    generator = torch.Generator().manual_seed(seed)
    samples = torch.rand(2, 3, 3, 4, 4, generator=generator) * 2 - 1  # (R, S, 3, H, W)
    held_out = (torch.rand(2, 3, 1, 4, 4, generator=generator) < 0.5).float()
    return samples, held_out


def test_one_update_weighs_held_out_pixels():
    samples, held_out = draws(0)
    mean, var, sums = layer_stats(samples, held_out, FLOOR)
    assert sums is None  # nothing kept without a decay
    expected = weighted(samples, (held_out + 1e-3).expand_as(samples))
    torch.testing.assert_close(mean, expected[0])
    torch.testing.assert_close(var, expected[1])


@pytest.mark.parametrize("decay", [0.25, 0.5, 0.9])
def test_memory_is_the_earlier_samples_at_a_decayed_weight(decay):
    (old, old_held), (new, new_held) = draws(1), draws(2)
    _, _, sums = layer_stats(old, old_held, FLOOR, None, decay)
    mean, var, _ = layer_stats(new, new_held, FLOOR, sums, decay)
    weights = torch.cat([decay * (old_held + 1e-3), new_held + 1e-3], 1)
    expected = weighted(torch.cat([old, new], 1), weights.expand(-1, -1, 3, -1, -1))
    torch.testing.assert_close(mean, expected[0])
    torch.testing.assert_close(var, expected[1], rtol=1e-4, atol=1e-5)
    # without a decay the earlier sums are ignored
    alone = layer_stats(new, new_held, FLOOR, sums, 0.0)
    torch.testing.assert_close(alone[0], layer_stats(new, new_held, FLOOR)[0])


def test_the_engine_carries_the_sums_from_update_to_update():
    image, alpha = disk_image()
    seen = {}

    def run(memory):
        means = []
        layers = toy_decompose(
            image,
            seed=3,
            updates=3,
            tol=0.0,
            memory=memory,
            callback=lambda info: means.append(info["stats"][0][0].clone()),
        )
        seen[memory] = means
        return layers

    layers = run(0.5)
    run(0.0)
    # the same draws: the first update has no memory, the later ones differ
    torch.testing.assert_close(seen[0.5][0], seen[0.0][0])
    assert not torch.allclose(seen[0.5][2], seen[0.0][2])
    assert ((layers.mask > 0.5) == (alpha > 0.5)).float().mean() >= 0.95
