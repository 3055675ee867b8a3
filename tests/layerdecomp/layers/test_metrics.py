"""The field's per-layer metrics (soft alpha IoU, alpha-weighted RGB L1) on cases worked by hand."""

import math

import pytest
import torch

from layerdecomp.errors import InputError
from layerdecomp.layers import Layers
from layerdecomp.layers.metrics import layer_scores, rgb_l1, soft_iou


def test_soft_iou_is_the_sum_of_minima_over_the_sum_of_maxima():
    alpha = torch.tensor([[1.0, 0.5], [0.0, 0.0]])
    truth = torch.tensor([[1.0, 1.0], [0.5, 0.0]])
    # min: 1 + 0.5 + 0 + 0 = 1.5; max: 1 + 1 + 0.5 + 0 = 2.5; 1.5 / 2.5 = 0.6
    assert soft_iou(alpha, truth) == pytest.approx(0.6)
    assert soft_iou(truth, alpha) == pytest.approx(0.6)
    # on hard masks it is the usual IoU: {0, 1} ∩ {1, 2} over {0, 1, 2} = 1/3
    assert soft_iou(torch.tensor([1.0, 1, 0]), torch.tensor([0.0, 1, 1])) == pytest.approx(1 / 3)
    assert soft_iou(torch.zeros(2, 2), torch.zeros(2, 2)) == 1.0  # both empty: a perfect match


def test_rgb_l1_weights_each_pixels_channel_mean_by_the_true_alpha():
    # three pixels in a row; colours in [0, 1]
    rgb = torch.tensor([[[0.0, 0.4, 1.0]], [[0.0, 0.4, 1.0]], [[0.0, 0.4, 1.0]]])  # (3, 1, 3)
    truth = torch.tensor([[[0.3, 1.0, 0.0]], [[0.0, 1.0, 0.0]], [[0.0, 1.0, 0.0]]])
    alpha = torch.tensor([[1.0, 0.5, 0.0]])
    # pixel 0: |0 − 0.3|, 0, 0 → mean 0.1, weight 1
    # pixel 1: 0.6 in each channel → mean 0.6, weight 0.5
    # pixel 2: error 1 everywhere but weight 0: it does not count
    # (1·0.1 + 0.5·0.6 + 0·1) / (1 + 0.5 + 0) = 0.4 / 1.5
    assert rgb_l1(rgb, truth, alpha) == pytest.approx(0.4 / 1.5)
    assert rgb_l1(rgb, truth, alpha[None]) == pytest.approx(0.4 / 1.5)  # (1, H, W) alike
    assert math.isnan(rgb_l1(rgb, truth, torch.zeros(1, 3)))  # no true layer: no figure


def test_layer_scores_match_layers_front_to_back_and_count_the_hidden_background():
    # 1×2 images in [−1, 1]; the true foreground covers pixel 0 only, in white, over black
    white, black, grey = torch.ones(3, 1, 1), -torch.ones(3, 1, 1), torch.zeros(3, 1, 1)
    truth = Layers.two(
        torch.cat([white, black], 2)[None],  # foreground: white at pixel 0
        torch.cat([black, black], 2)[None],  # background: black, also behind the foreground
        torch.tensor([[[[1.0, 0.0]]]]),
    )
    guess = Layers.two(
        torch.cat([grey, white], 2)[None],  # grey where the object is (0.5 in [0, 1])
        torch.cat([white, black], 2)[None],  # white behind the object: hidden, still wrong
        torch.tensor([[[[0.5, 0.0]]]]),
    )
    front, back = layer_scores(guess, truth)
    # front alpha: min(0.5, 1) + min(0, 0) = 0.5 over max = 1 → 0.5
    assert front["alpha_iou"] == pytest.approx(0.5)
    # front colours weighted by the true alpha (1, 0): |0.5 − 1| at pixel 0 → 0.5
    assert front["rgb_l1"] == pytest.approx(0.5)
    # the background's alpha is 1 in both; its colours count everywhere: (|1 − 0| + 0) / 2
    assert back["alpha_iou"] == 1.0
    assert back["rgb_l1"] == pytest.approx(0.5)
    perfect = layer_scores(truth, truth)
    assert perfect == [{"alpha_iou": 1.0, "rgb_l1": 0.0}] * 2


def test_mismatched_shapes_are_refused():
    with pytest.raises(InputError, match="shape"):
        soft_iou(torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(InputError, match="rgb_l1"):
        rgb_l1(torch.zeros(3, 2, 2), torch.zeros(3, 2, 2), torch.zeros(2, 3))
    two = Layers.two(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2))
    three = Layers(torch.zeros(3, 3, 2, 2), torch.full((3, 1, 2, 2), 1 / 3))
    with pytest.raises(InputError, match="truth"):
        layer_scores(two, three)
