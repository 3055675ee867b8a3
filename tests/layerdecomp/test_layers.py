"""The layer engine on an exact, prompt-conditioned toy model (tests/layerdecomp/toy_backend.py)."""

import pytest
import torch

from layerdecomp.constraints import recompose
from layerdecomp.layers import DecomposeConfig, decompose, exact_layers
from tests.layerdecomp.toy_backend import COLOURS, ToyBackend, disk_image


def iou(pred, truth):
    return ((pred & truth).sum() / (pred | truth).sum()).item()


@pytest.fixture(scope="module")
def disk():
    backend = ToyBackend()
    image, alpha = disk_image()
    layers = decompose(
        backend, image, "red", "blue", generator=torch.Generator().manual_seed(0), disable=True
    )
    return backend, image, alpha, layers


def test_the_mask_finds_the_foreground(disk):
    _, _, alpha, layers = disk
    assert iou(layers.mask > 0.5, alpha > 0.5) >= 0.95
    assert layers.history[-1] < layers.history[0]


def test_layers_recompose_the_input_and_the_background_is_completed(disk):
    _, image, alpha, layers = disk
    assert (layers.recomposition - image).abs().max() <= 1e-5
    blue = torch.tensor(COLOURS["blue"]).view(1, 3, 1, 1)
    hidden = alpha.expand(1, 3, -1, -1) > 0.5
    assert (layers.background - blue).abs()[hidden].mean() <= 0.1  # what the disk hid
    red = torch.tensor(COLOURS["red"]).view(1, 3, 1, 1)
    assert (layers.foreground - red).abs()[hidden].mean() <= 0.1


def test_all_samples_share_one_batched_call(disk):
    backend, _, _, layers = disk
    config = DecomposeConfig()
    iteration_batch = 2 * config.samples * 2  # two layers × K, doubled by guidance
    final_batch = 2 * config.final_samples * 2
    assert set(backend.batch_sizes) == {iteration_batch, final_batch}
    per_draw = 1 + 2 * config.newton_iters
    assert backend.unet_calls == layers.nfe == per_draw * (len(layers.history) + 1)


def test_swapping_the_prompts_swaps_the_layers():
    image, alpha = disk_image()
    layers = decompose(
        ToyBackend(),
        image,
        "blue",
        "red",
        generator=torch.Generator().manual_seed(0),
        disable=True,
    )
    assert iou(layers.mask > 0.5, alpha < 0.5) >= 0.95


def test_runs_are_reproducible_from_the_seed():
    image, _ = disk_image()
    runs = [
        decompose(
            ToyBackend(),
            image,
            "red",
            "blue",
            iterations=2,
            disable=True,
            generator=torch.Generator().manual_seed(seed),
        )
        for seed in (3, 3, 4)
    ]
    assert torch.equal(runs[0].mask, runs[1].mask)
    assert not torch.equal(runs[0].mask, runs[2].mask)


def testexact_layers_hold_the_blend_equation_inside_the_pixel_range():
    g = torch.Generator().manual_seed(0)
    image, fg, bg = (torch.rand(3, 1, 3, 8, 8, generator=g) * 2 - 1).unbind(0)
    mask = torch.rand(1, 1, 8, 8, generator=g)
    mask[..., 0, :] = 1.0
    mask[..., 1, :] = 0.0
    new_fg, new_bg = exact_layers(image, mask, fg, bg)
    assert torch.allclose(recompose(mask, new_fg, new_bg), image, atol=1e-6)
    assert new_fg.abs().max() <= 1 + 1e-6 and new_bg.abs().max() <= 1 + 1e-6
    assert torch.equal(new_fg[..., 0, :], image[..., 0, :])  # certain foreground: the input
    assert torch.allclose(new_bg[..., 0, :], bg[..., 0, :])  # ... and the estimate behind it
    assert torch.equal(new_bg[..., 1, :], image[..., 1, :])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(fg_prompt=" "), "^fg_prompt"),
        (dict(bg_prompt=""), "^bg_prompt"),
        (dict(samples=0), "^samples"),
        (dict(noise_level=1.0), "^noise_level"),
        (dict(damping=0.0), "^damping"),
        (dict(prior="flat"), "^prior"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    image, _ = disk_image()
    args = dict(fg_prompt="red", bg_prompt="blue")
    args.update({k: kwargs.pop(k) for k in list(kwargs) if k in args})
    with pytest.raises(ValueError, match=message):
        decompose(ToyBackend(), image, args["fg_prompt"], args["bg_prompt"], disable=True, **kwargs)
