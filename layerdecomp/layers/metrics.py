"""The field's per-layer metrics of a decomposition against its true layers (docs/metrics.md).

Layer decomposition papers (LayerD, Qwen-Image-Layered, on Crello) score each predicted layer
against its true layer by two figures, both here for layers matched front to back:

- :func:`soft_iou`: the soft IoU of the layer's alpha against the true alpha,
  ``Σ min(α, α*) / Σ max(α, α*)`` (1 where both alphas are empty);
- :func:`rgb_l1`: the alpha-weighted RGB L1 of the layer's colours, colours in [0, 1],
  ``Σ_p α*_p · mean_c |x_pc − x*_pc| / Σ_p α*_p`` (NaN where the true alpha is empty): the
  colour error where the true layer is, hidden parts included (the background's alpha is 1
  everywhere, so its whole true background counts, also behind the foreground).

:func:`layer_scores` gives both for every layer of a :class:`Layers` against the true layers as a
:class:`Layers` (their stacking alphas and complete images).
"""

from __future__ import annotations

import torch

from ..errors import InputError
from .result import Layers


def soft_iou(alpha: torch.Tensor, truth: torch.Tensor) -> float:
    """``Σ min(α, α*) / Σ max(α, α*)`` of two alphas in [0, 1] of one shape (1.0 if both are 0).

    Raises:
        InputError: shapes that differ.
    """
    if alpha.shape != truth.shape:
        raise InputError(f"alpha: shape {tuple(alpha.shape)} differs from {tuple(truth.shape)}")
    alpha, truth = alpha.double(), truth.double()
    union = torch.maximum(alpha, truth).sum()
    if union <= 0:
        return 1.0
    return float(torch.minimum(alpha, truth).sum() / union)


def rgb_l1(rgb: torch.Tensor, truth: torch.Tensor, alpha: torch.Tensor) -> float:
    """``Σ_p α*_p · mean_c |x_pc − x*_pc| / Σ_p α*_p``: the mean absolute colour error of ``rgb``
    (3, H, W) against ``truth`` (3, H, W), both in [0, 1], weighted by the true alpha ``alpha``
    (H, W) or (1, H, W); NaN where the true alpha is empty.

    Raises:
        InputError: shapes that do not match.
    """
    if rgb.shape != truth.shape or rgb.dim() != 3 or alpha.shape[-2:] != rgb.shape[-2:]:
        raise InputError(
            f"rgb_l1: expected (3, H, W) colours and an (H, W) alpha, got {tuple(rgb.shape)}, "
            f"{tuple(truth.shape)} and {tuple(alpha.shape)}"
        )
    weight = alpha.double().reshape(rgb.shape[-2:])
    total = weight.sum()
    if total <= 0:
        return float("nan")
    error = (rgb.double() - truth.double()).abs().mean(0)
    return float((weight * error).sum() / total)


def layer_scores(layers: Layers, truth: Layers) -> list[dict[str, float]]:
    """``{"alpha_iou": …, "rgb_l1": …}`` of each layer, front to back, against the true layer of
    the same rank: :func:`soft_iou` of the stacking alphas (:attr:`Layers.alphas`; the
    background's is 1 in both, so its IoU is 1) and :func:`rgb_l1` of the images, mapped from
    [−1, 1] to [0, 1], weighted by the true stacking alpha.

    ``truth`` holds the true layers complete (a background's hidden part too), e.g.
    ``Layers.two(foreground, background, alpha)``.

    Raises:
        InputError: a different count or size of layers.
    """
    if layers.images.shape != truth.images.shape:
        raise InputError(
            f"truth: {tuple(truth.images.shape)} layers for {tuple(layers.images.shape)}"
        )
    alphas, true_alphas = layers.alphas.cpu(), truth.alphas.cpu()
    colours = ((layers.images.detach().cpu().double() + 1) / 2).clamp(0, 1)
    true_colours = ((truth.images.detach().cpu().double() + 1) / 2).clamp(0, 1)
    return [
        {
            "alpha_iou": soft_iou(alphas[i], true_alphas[i]),
            "rgb_l1": rgb_l1(colours[i], true_colours[i], true_alphas[i]),
        }
        for i in range(layers.count)
    ]


__all__ = ["layer_scores", "rgb_l1", "soft_iou"]
