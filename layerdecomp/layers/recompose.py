"""Exact recomposition: layers that reproduce the input, ``x = m·x¹ + (1−m)·x²`` (§4.2)."""

from __future__ import annotations

import torch

from ..constraints.blend import recompose


def exact_layers(image, mask, fg, bg):
    """Layers close to the estimates ``fg``, ``bg`` with ``m·fg + (1−m)·bg = image`` exactly.

    Per pixel, ``fg = x + (1−m)·d`` and ``bg = x − m·d`` satisfy the blend for any d; d is the
    least-squares fit to the estimates, shrunk where needed to stay in [−1, 1]. Where m is 1 (0),
    the foreground (background) is the input itself and the other layer keeps its estimate.
    """
    d = ((1 - mask) * (fg - image) - mask * (bg - image)) / ((1 - mask) ** 2 + mask**2)

    def room(step):  # the largest s in [0, 1] with image + s·step inside [−1, 1]
        up = torch.where(step > 0, (1 - image) / step.clamp_min(1e-12), 1.0)
        down = torch.where(step < 0, (-1 - image) / step.clamp_max(-1e-12), 1.0)
        return torch.minimum(up, down).clamp(0, 1)

    s = torch.minimum(room((1 - mask) * d), room(-mask * d))
    return image + s * (1 - mask) * d, image - s * mask * d


__all__ = ["exact_layers", "recompose"]
