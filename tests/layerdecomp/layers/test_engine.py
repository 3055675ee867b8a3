"""The layer engine on an exact, prompt-conditioned toy model (tests/layerdecomp/toy_backend.py)."""

import pytest
import torch

from layerdecomp.layers import DecomposeConfig, exact_layers
from layerdecomp.layers.stats import (
    anchor_to_kept,
    border_shares,
    keep_masks,
    log_prior,
    residual_variance,
    select_fit,
    select_run,
)
from layerdecomp.tasks.decompose import decompose_image
from tests.layerdecomp.toy_backend import (
    COLOURS,
    ToyBackend,
    disk_image,
    three_layer_image,
    toy_decompose,
)


def blend(mask, layer1, layer2):
    """x = m·x¹ + (1−m)·x²: the two-layer model."""
    return mask * layer1 + (1 - mask) * layer2


def iou(pred, truth):
    return ((pred & truth).sum() / (pred | truth).sum()).item()


@pytest.fixture(scope="module")
def disk():
    backend = ToyBackend()
    image, alpha = disk_image()
    # an exact model needs no pooling of evidence across pixels
    layers = toy_decompose(image, backend=backend, smoothing=0.0)
    return backend, image, alpha, layers


def test_the_default_smoothing_keeps_the_disk_and_the_exact_blend():
    image, alpha = disk_image()
    layers = toy_decompose(image)
    assert iou(layers.mask > 0.5, alpha > 0.5) >= 0.95
    assert (layers.recomposition - image).abs().max() <= 1e-5


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


def test_three_layers_find_each_region_and_recompose_the_input():
    image, truth = three_layer_image()
    backend = ToyBackend()
    layers = toy_decompose(image, fg=["red", "green"], bg="blue", backend=backend)
    assert layers.count == 3 and layers.prompts == ["red", "green", "blue"]
    assert torch.allclose(layers.masks.sum(0), torch.ones(1, 16, 16), atol=1e-6)
    owner = layers.masks.argmax(0)
    for index in range(3):
        assert iou(owner == index, truth.argmax(0) == index) >= 0.9, index
    assert (layers.recomposition - image).abs().max() <= 1e-5
    # the background is completed behind both objects (where the engine found them)
    blue = torch.tensor(COLOURS["blue"]).view(3, 1, 1)
    hidden = ((truth[0] + truth[1]) > 0.5) & (layers.masks[-1] < 0.1)
    assert (layers.background[0] - blue).abs()[:, hidden[0]].mean() <= 0.1
    # every layer's samples in one batched call: 3 layers × K × runs
    config = DecomposeConfig()
    assert 3 * config.samples * config.runs in backend.batch_sizes
    assert set(backend.batch_sizes) == {
        3 * config.samples * config.runs,
        3 * config.final_samples,
        3,  # the image under the three prompts (the orientation check)
    }


def test_three_layers_found_in_another_order_get_their_prompts_back():
    image, truth = three_layer_image()
    start = truth[[1, 2, 0], 0].unsqueeze(0)  # each component starts on another prompt's region
    run = dict(seed=0, init_mask=start, updates=1, damping=0.05, runs=1)
    kept = toy_decompose(image, fg=["red", "green"], bg="blue", orient=False, **run)
    assert kept.order == [0, 1, 2] and not kept.swapped
    assert iou(kept.masks.argmax(0) == 0, truth.argmax(0) == 1) >= 0.9  # still permuted
    fixed = toy_decompose(image, fg=["red", "green"], bg="blue", **run)
    assert fixed.swapped and fixed.order == [1, 2, 0]
    for index in range(3):
        assert iou(fixed.masks.argmax(0) == index, truth.argmax(0) == index) >= 0.9


@pytest.mark.parametrize("orient_by", ["inpainting", "denoising"])
def test_all_samples_share_one_batched_call(orient_by):
    backend = ToyBackend()
    image, _ = disk_image()
    layers = toy_decompose(image, backend=backend, smoothing=0.0, orient_by=orient_by)
    config = DecomposeConfig()
    cfg = 2 if config.guidance > 0 else 1  # guidance doubles every batch
    iteration_batch = 2 * config.samples * config.runs * cfg  # two layers × K × runs
    final_batch = 2 * config.final_samples * cfg
    per_draw = 1 + 2 * config.refine.iters
    if orient_by == "denoising":
        orient_batch, orient_nfe = 2 * cfg, config.orient_levels  # the image under both prompts
    else:  # each prompt inpaints each component of each run, in one draw
        orient_batch, orient_nfe = 2 * config.orient_draws * config.runs * 2 * cfg, per_draw
    assert set(backend.batch_sizes) == {iteration_batch, final_batch, orient_batch}
    expected = per_draw * (len(layers.history) + 1) + orient_nfe
    assert backend.unet_calls == layers.nfe == expected


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_every_cell_is_held_out_of_some_sample_of_each_layer(value):
    k = 5
    cells = torch.full((1, 1, 6, 7), value)
    keep = keep_masks(torch.cat([cells, 1 - cells], 1), k, torch.Generator().manual_seed(0))
    assert keep.shape == (2 * k, 1, 6, 7)
    for layer in range(2):
        held_out = (1 - keep[layer * k : (layer + 1) * k]).sum(0)
        assert held_out.min() >= 1
    # a layer that owns a cell outright keeps it in all but its one held-out sample
    owner = 0 if value == 1.0 else 1 if value == 0.0 else None
    if owner is not None:
        assert torch.equal(keep[owner * k : (owner + 1) * k].sum(0), torch.full((1, 6, 7), k - 1.0))
        assert keep[(1 - owner) * k : (2 - owner) * k].sum() == 0


def test_keep_masks_of_several_runs_follow_each_runs_mask():
    k = 4
    cells = torch.stack([torch.zeros(1, 5, 5), torch.ones(1, 5, 5), torch.zeros(1, 5, 5)])
    cells = torch.cat([cells, 1 - cells], 1)  # (runs, layers, 5, 5)
    keep = keep_masks(cells, k, torch.Generator().manual_seed(0)).view(2, 3, k, 1, 5, 5)
    fg, bg = keep[0].sum(1), keep[1].sum(1)  # (runs, 1, 5, 5): samples keeping each cell
    owned = torch.tensor([0.0, k - 1.0, 0.0]).view(3, 1, 1, 1).expand(3, 1, 5, 5)
    assert torch.equal(fg, owned)  # kept in all but the held-out sample where m = 1, never at 0
    assert torch.equal(bg, (k - 1.0) - fg)
    assert ((1 - keep).sum(2) >= 1).all()  # every run: each cell held out of ≥ 1 sample per layer


def test_after_select_after_updates_only_the_best_run_goes_on():
    backend = ToyBackend()
    image, alpha = disk_image()
    seen = []
    layers = toy_decompose(
        image, backend=backend, smoothing=0.0, select_after=1, callback=seen.append, tol=0.0
    )
    config = DecomposeConfig()
    runs = [len(step["mask"]) for step in seen]
    assert runs == [config.runs] + [1] * (config.em.updates - 1)
    # the run kept is the one its next update continues (the runs still differ after one)
    before, after = seen[0]["mask"], seen[1]["mask"][0]
    distance = (before - after).abs().mean((1, 2, 3))
    assert int(distance.argmin()) == layers.run
    # L·R·K samples in the first update, L·K after it; the prompts' errors are computed once
    per_draw, k = 1 + 2 * config.refine.iters, config.samples
    assert backend.batch_sizes.count(2 * k * config.runs) == per_draw
    assert backend.batch_sizes.count(2 * k) == per_draw * (config.em.updates - 1)
    assert layers.nfe == per_draw * (config.em.updates + 1) + config.orient_levels
    assert iou(layers.mask > 0.5, alpha > 0.5) >= 0.95


def test_the_run_that_agrees_best_with_the_prompts_is_chosen():
    gain = torch.zeros(1, 6, 6)
    gain[:, 1:4, 1:4] = 1.0  # the foreground prompt fits the centre
    gain[:, 4:, 4:] = -1.0
    errors = torch.stack([1 - gain, 1 + gain])  # per prompt: lower where it fits
    centre = torch.zeros(1, 6, 6)
    centre[:, 1:4, 1:4] = 1.0
    noise = torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(0))
    eroded = centre.clone()
    eroded[:, 1, 1] = 0.0
    runs = torch.stack([noise, 1 - eroded, centre])
    runs = torch.cat([runs, 1 - runs], 1)
    assert select_run(errors, runs, orient=True) == (2, [0, 1])
    assert select_run(errors, runs[:2], orient=True) == (1, [1, 0])  # swapped, it fits best
    assert select_run(errors, runs[:2], orient=False) == (0, [0, 1])


def test_the_background_prior_decides_where_the_prompts_barely_differ():
    centre = torch.zeros(1, 1, 8, 8)
    centre[..., 2:6, 2:6] = 1.0
    shares = torch.cat([centre, 1 - centre], 1)  # (R = 1, L = 2): component 0 is the centre
    assert torch.allclose(border_shares(shares), torch.tensor([[0.0, 1.0]]))
    # the prompts slightly prefer the swap: the background prompt denoises the centre a bit better
    errors = torch.stack([torch.full((1, 8, 8), 1.0), torch.full((1, 8, 8), 1.0)])
    errors[1, :, 2:6, 2:6] = 0.95
    assert select_run(errors, shares, orient=True) == (0, [1, 0])
    border = border_shares(shares)
    assert select_run(errors, shares, orient=True, border=border, weight=0.5) == (0, [0, 1])
    assert select_run(errors, shares, orient=True, border=border, weight=0.0) == (0, [1, 0])
    # a clear preference of the prompts outweighs it (a gap of 1.25 in the scaled fit, vs 0.5)
    errors[1, :, 2:6, 2:6] = 0.0
    errors[0, :, 2:6, 2:6] = 10.0
    assert select_run(errors, shares, orient=True, border=border, weight=0.5) == (0, [1, 0])


def test_the_background_prior_scales_the_fit_alike_for_every_run():
    # the same runs and scores: a fit scaled by any positive factor picks the same run and order
    fit = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(1)) - 5.0
    border = torch.softmax(torch.randn(4, 3, generator=torch.Generator().manual_seed(2)), 1)
    for weight in (0.0, 0.5, 2.0):
        assert select_fit(fit, True, border, weight) == select_fit(7.0 * fit, True, border, weight)
    assert select_fit(fit, True, border, 0.0) == select_fit(fit, True)
    # a huge weight gives the background prompt the component with the most border
    run, order = select_fit(fit, True, border, 1e6)
    assert border[run, order.index(2)] == border.max()


def test_three_components_get_the_prompts_that_denoise_them_best():
    regions = torch.zeros(3, 6, 6)
    regions[0, :2], regions[1, 2:4], regions[2, 4:] = 1.0, 1.0, 1.0
    errors = (1 - regions).unsqueeze(1)  # prompt l fits region l exactly
    permuted = regions[[2, 0, 1]].unsqueeze(0)  # component c holds region (2, 0, 1)[c]
    assert select_run(errors, permuted, orient=True) == (0, [2, 0, 1])
    assert select_run(errors, permuted, orient=False) == (0, [0, 1, 2])


def test_the_mixture_prior_keeps_each_layers_share_within_bounds():
    masks = torch.stack([torch.full((1, 4, 4), 0.01), torch.full((1, 4, 4), 0.6)])
    masks[1, :, 0, 0] = 0.2  # mean 0.575
    masks = torch.cat([masks, 1 - masks], 1)
    prior = log_prior(masks, "mixture", 0.2)
    odds = (prior[:, 0] - prior[:, 1]).flatten()
    assert odds[0].item() == pytest.approx(torch.logit(torch.tensor(0.2)).item())  # not logit(0.01)
    assert odds[1].item() == pytest.approx(torch.logit(torch.tensor(0.575)).item())
    per_pixel = log_prior(masks, "mask", 0.2)
    assert torch.allclose(per_pixel[:, :1] - per_pixel[:, 1:], torch.logit(masks[:, :1]))
    assert log_prior(masks, "uniform", 0.2).abs().sum() == 0


def test_residual_variance_is_the_owned_pixels_mean_squared_error():
    image = torch.zeros(1, 3, 2, 2)
    mean = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    weight = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2)
    assert residual_variance(image, mean, weight).item() == pytest.approx((1 + 16) / 2)
    half = weight * 0.5 + (1 - weight) * 0.25  # weights need not be binary
    expected = (0.5 * (1 + 16) + 0.25 * (4 + 9)) / 1.5
    assert residual_variance(image, mean, half).item() == pytest.approx(expected)


def test_the_true_mask_is_a_fixed_point_and_a_wrong_init_shape_is_refused():
    image, alpha = disk_image()
    layers = toy_decompose(image, seed=1, init_mask=alpha, updates=3, tol=0.0)
    assert iou(layers.mask > 0.5, alpha > 0.5) >= 0.95
    with pytest.raises(ValueError, match="init_mask"):
        toy_decompose(image, init_mask=alpha[..., :-1])


def test_the_orientation_check_swaps_a_partition_found_the_wrong_way_round():
    image, alpha = disk_image()
    # one barely damped update: the inverted start stays inverted
    run = dict(seed=2, init_mask=1 - alpha, updates=1, damping=0.05)
    kept = toy_decompose(image, orient=False, **run)
    assert iou(kept.mask < 0.5, alpha > 0.5) >= 0.95 and not kept.swapped  # still inverted
    fixed = toy_decompose(image, **run)
    assert fixed.swapped
    assert iou(fixed.mask > 0.5, alpha > 0.5) >= 0.95


def test_swapping_the_prompts_swaps_the_layers():
    image, alpha = disk_image()
    layers = toy_decompose(image, fg="blue", bg="red")
    assert iou(layers.mask > 0.5, alpha < 0.5) >= 0.95


def test_runs_are_reproducible_from_the_seed():
    image, _ = disk_image()
    runs = [toy_decompose(image, seed=seed, updates=2) for seed in (3, 3, 4)]
    assert torch.equal(runs[0].mask, runs[1].mask)
    assert not torch.equal(runs[0].mask, runs[2].mask)


def test_exact_layers_hold_the_blend_equation_inside_the_pixel_range():
    g = torch.Generator().manual_seed(0)
    image, fg, bg = (torch.rand(3, 1, 3, 8, 8, generator=g) * 2 - 1).unbind(0)
    mask = torch.rand(1, 1, 8, 8, generator=g)
    mask[..., 0, :] = 1.0
    mask[..., 1, :] = 0.0
    new_fg, new_bg = exact_layers(image, torch.cat([mask, 1 - mask]), torch.cat([fg, bg]))
    assert torch.allclose(blend(mask, new_fg[None], new_bg[None]), image, atol=1e-6)
    assert new_fg.abs().max() <= 1 + 1e-6 and new_bg.abs().max() <= 1 + 1e-6
    assert torch.equal(new_fg[..., 0, :], image[0, :, 0, :])  # certain foreground: the input
    assert torch.allclose(new_bg[..., 0, :], bg[0, :, 0, :])  # ... and the estimate behind it
    assert torch.equal(new_bg[..., 1, :], image[0, :, 1, :])


def test_exact_layers_of_several_layers_are_the_least_squares_fit_inside_the_range():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 8, 8, generator=g) * 1.6 - 0.8
    estimates = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    masks = torch.softmax(torch.randn(4, 1, 8, 8, generator=g) * 2, 0)
    layers = exact_layers(image, masks, estimates)
    assert torch.allclose((masks * layers).sum(0, keepdim=True), image, atol=1e-6)
    assert layers.abs().max() <= 1 + 1e-6
    # where no layer leaves the range, the fit is the least-squares one: the correction of each
    # layer is proportional to its share
    correction = (layers - estimates) / masks
    inside = (layers.abs() < 0.999).all(0) & (masks > 0.05).all(0)
    spread = correction.amax(0) - correction.amin(0)
    assert spread[inside].max() <= 1e-3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(fg_prompt=" "), r"^fg: the prompt is empty"),
        (dict(bg_prompt=""), r"^bg: the prompt is empty"),
        (dict(samples=0), "^samples"),
        (dict(noise_level=1.0), "^noise_level"),
        (dict(damping=0.0), "^damping"),
        (dict(prior="flat"), "^prior"),
        (dict(min_share=0.0), "^min_share"),
        (dict(min_share=0.6), "^min_share"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    image, _ = disk_image()
    fg, bg = kwargs.pop("fg_prompt", "red"), kwargs.pop("bg_prompt", "blue")
    with pytest.raises(ValueError, match=message):
        toy_decompose(image, fg=fg, bg=bg, **kwargs)


@pytest.mark.parametrize("prompts", [["red"], ["red"] * 9])
def test_the_number_of_layers_is_checked(prompts):
    from layerdecomp.layers import decompose

    image, _ = disk_image()
    with pytest.raises(ValueError, match="^prompts: expected 2 to 8 layers"):
        decompose(ToyBackend(), image, prompts)


def test_decompose_image_works_at_work_side_and_returns_the_input_size():
    from layerdecomp.io import image_to_tensor, tensor_to_image

    image, _ = disk_image(side=16)
    pil = tensor_to_image(image)
    layers = decompose_image(ToyBackend(side=8), pil, "red", "blue", work_side=8, disable=True)
    assert layers.trace["work_size"] == [8, 8]
    assert layers.mask.shape[-2:] == (16, 16)
    original = image_to_tensor(pil)
    assert (layers.recomposition - original).abs().max() <= 1e-5
    three, _ = three_layer_image(side=16)
    pil = tensor_to_image(three)
    layers = decompose_image(
        ToyBackend(side=8), pil, ["red", "green", "blue"], work_side=8, disable=True
    )
    assert layers.masks.shape == (3, 1, 16, 16) and layers.images.shape == (3, 3, 16, 16)
    assert torch.allclose(layers.masks.sum(0), torch.ones(1, 16, 16), atol=1e-6)
    assert (layers.recomposition - image_to_tensor(pil)).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="work_side"):
        decompose_image(ToyBackend(), pil, "red", "blue", work_side=-1, disable=True)


def test_anchoring_removes_a_samples_colour_cast_away_from_its_holes_and_nothing_else():
    image = torch.rand(1, 3, 16, 16) * 1.6 - 0.8
    cast = torch.tensor([0.1, -0.15, 0.05]).view(1, 3, 1, 1)
    keep = torch.zeros(3, 1, 8, 8)
    keep[:2, :, :5] = 1  # the first two kept the top rows of cells; the third kept nothing
    samples = (image + cast).repeat(3, 1, 1, 1)
    samples[1, :, 8:10] = image[0, :, 8:10]  # the 5th row of cells, next to the hole: bled into
    anchored = anchor_to_kept(samples, image, keep, factor=2)
    assert torch.allclose(anchored[0], image[0], atol=1e-6)  # held-out pixels too
    assert torch.allclose(anchored[1, :, :8], image[0, :, :8], atol=1e-6)  # the edge not counted
    assert torch.equal(anchored[2], samples[2])


def test_the_options_and_the_trace_are_kept_apart():
    """``Layers.config`` holds the options by name and nothing else; what the run found (the
    noise level, the layer count) is its ``trace``, and ``record()`` keeps them apart too."""
    from layerdecomp.options import as_dict, configure

    image, _ = disk_image()
    layers = toy_decompose(image, updates=1)
    assert layers.config == as_dict(configure(DecomposeConfig, None, {"updates": 1}))
    assert set(layers.trace) == {"timestep", "layers", "confidence"} and layers.trace["layers"] == 2
    record = layers.record()
    assert record["parameters"] == layers.config and record["timestep"] == layers.trace["timestep"]
