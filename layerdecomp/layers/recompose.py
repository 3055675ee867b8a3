"""Exact recomposition: layers that reproduce the input, ``x = Σ_l m_l·x_l`` (§4.2)."""

from __future__ import annotations

import torch


def exact_layers(image: torch.Tensor, masks: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
    """Layers (L, 3, H, W) close to ``estimates`` with ``Σ_l m_l·x_l = image`` exactly.

    ``image`` is (1, 3, H, W) in [−1, 1], ``masks`` (L, 1, H, W) shares summing to 1. Per pixel,
    the least-squares correction of the estimates onto the blend equation is
    ``x_l = x + d_l`` with ``d_l = (e_l − x) − m_l·c / Σ_j m_j²`` and ``c = Σ_j m_j·(e_j − x)``
    (so ``Σ_l m_l·d_l = 0``); where a layer would leave [−1, 1], every ``d_l`` of that pixel is
    shrunk by one factor toward 0 (the input itself satisfies the blend and the range). Where a
    layer's share is 1, that layer is the input and the others keep their estimates. For two
    layers this is ``fg = x + (1−m)·d``, ``bg = x − m·d``.
    """
    offsets = estimates - image
    energy = (masks**2).sum(0, keepdim=True)
    residual = (masks * offsets).sum(0, keepdim=True)
    d = offsets - masks * residual / energy

    up = torch.where(d > 0, (1 - image) / d.clamp_min(1e-12), 1.0)
    down = torch.where(d < 0, (-1 - image) / d.clamp_max(-1e-12), 1.0)
    s = torch.minimum(up, down).clamp(0, 1).amin(0, keepdim=True)
    return image + s * d


__all__ = ["exact_layers"]
