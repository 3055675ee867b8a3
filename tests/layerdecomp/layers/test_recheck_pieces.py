"""Every piece of a front layer but its largest goes to the layer whose prompt denoises it best
(``recheck_pieces``, :func:`layerdecomp.layers.stats.recheck_pieces`)."""

from __future__ import annotations

import pytest
import torch

from layerdecomp.layers.stats import recheck_pieces
from tests.layerdecomp.toy_backend import disk_image, toy_decompose


def pieces() -> torch.Tensor:
    """A front layer's share (12, 12): a 4 × 4 block (the object) and two 1 × 2 specks apart."""
    fg = torch.zeros(12, 12)
    fg[2:6, 2:6] = 0.9
    fg[9, 9:11] = 0.8  # speck a
    fg[1, 9:11] = 0.7  # speck b
    return fg


def errors_of(fit: torch.Tensor):
    """The errors callable, counting its calls."""
    calls = []

    def errors() -> torch.Tensor:
        calls.append(1)
        return fit

    return errors, calls


def test_a_speck_the_background_prompt_fits_better_goes_to_the_background():
    fg = pieces()
    shares = torch.stack([fg, 1 - fg])
    fit = torch.stack([torch.ones(12, 12), 2 * torch.ones(12, 12)])  # the fg prompt fits all …
    fit[1, 9, 9:11] = 0.5  # … but speck a, which the background prompt fits better
    errors, calls = errors_of(fit)
    out = recheck_pieces(shares, errors)
    speck = torch.zeros(12, 12, dtype=torch.bool)
    speck[9, 9:11] = True
    assert torch.equal(out[:, speck], torch.tensor([[0.0, 0.0], [1.0, 1.0]]))  # moved, shares 1
    assert torch.equal(out[:, ~speck], shares[:, ~speck])  # speck b and the object stay
    assert torch.allclose(out.sum(0), torch.ones(12, 12)) and calls == [1]


def test_the_largest_piece_stays_even_where_another_prompt_fits_it_better():
    fg = pieces()
    shares = torch.stack([fg, 1 - fg])
    errors, _ = errors_of(torch.stack([2 * torch.ones(12, 12), torch.ones(12, 12)]))
    out = recheck_pieces(shares, errors)
    assert torch.equal(out[0, 2:6, 2:6], fg[2:6, 2:6])  # the object
    out[0, 2:6, 2:6] = 0
    assert torch.equal(out[0], torch.zeros(12, 12))  # both specks went to the background


def test_one_piece_needs_no_map_and_changes_nothing():
    fg = torch.zeros(12, 12)
    fg[2:6, 2:6] = 1
    shares = torch.stack([fg, 1 - fg])
    errors, calls = errors_of(torch.ones(2, 12, 12))
    assert recheck_pieces(shares, errors) is shares and calls == []


def test_with_three_layers_a_piece_goes_to_the_front_layer_whose_prompt_fits_it():
    fg = pieces()
    other = torch.zeros(12, 12)
    other[6:9, 0:3] = 1.0
    shares = torch.stack([fg, other, 1 - fg - other])
    fit = torch.ones(3, 12, 12)
    fit[1, 1, 9:11] = 0.1  # speck b: the second prompt fits it best
    out = recheck_pieces(shares, errors_of(fit)[0])
    assert torch.equal(out[:, 1, 9:11], torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    assert torch.equal(out[:, 9, 9:11], shares[:, 9, 9:11])  # a tie keeps a piece where it is
    assert torch.allclose(out.sum(0), torch.ones(12, 12))


@pytest.mark.parametrize("orient_by", ["denoising", "inpainting"])
def test_the_engine_keeps_its_work_when_the_layers_are_whole(orient_by):
    """On the exact toy model the disk is one piece: the check changes nothing, costs nothing."""
    image, _ = disk_image()
    run = dict(seed=0, smoothing=0.0, orient_by=orient_by)
    on = toy_decompose(image, **run)
    off = toy_decompose(image, recheck_pieces=False, **run)
    assert torch.equal(on.masks, off.masks) and on.nfe == off.nfe


def test_the_engine_keeps_a_piece_of_the_object_that_its_prompt_fits():
    """A second, small red square apart from the red disk is the object's too: the red prompt
    denoises it best, so it stays in the front layer (on the exact toy model)."""
    image, truth = disk_image()
    red = image[0, :, 8, 8].clone()
    image[0, :, 1:3, 12:14] = red[:, None, None]
    truth = truth.clone()
    truth[..., 1:3, 12:14] = 1
    layers = toy_decompose(image, smoothing=0.0)
    assert torch.equal(layers.masks[0, 0] > 0.5, truth[0, 0] > 0.5)


def test_the_engine_gives_a_background_speck_back_to_the_background():
    """A run started with a blue speck in the red layer (one damped update keeps it there): the
    blue prompt denoises it best, so it goes back; without the check it stays."""
    image, truth = disk_image()
    start = truth.clone()
    start[..., 1:3, 12:14] = 1  # a speck of the blue background, apart from the disk
    run = dict(seed=0, init_mask=start, updates=1, damping=0.05, runs=1, smoothing=0.0)
    kept = toy_decompose(image, recheck_pieces=False, **run)
    assert bool((kept.masks[0, 0, 1:3, 12:14] > 0.5).all())  # the speck is still the front's
    fixed = toy_decompose(image, **run)
    assert torch.equal(fixed.masks[0, 0] > 0.5, truth[0, 0] > 0.5)
    assert fixed.nfe == kept.nfe  # the check's map is the orientation check's own
