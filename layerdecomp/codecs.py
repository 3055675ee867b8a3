"""Codecs map images (B, 3, H, W in [−1, 1]) to a model's space and back."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Codec(Protocol):
    """What a constraint needs of a model: its spatial ``factor``, ``encode`` and ``decode``.

    ``encode`` returns the latent mean times the VAE scaling factor for latent models.
    """

    factor: int

    def encode(self, image: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latent: torch.Tensor) -> torch.Tensor: ...


class IdentityCodec:
    """The codec of a pixel-space model: the model space is the image space."""

    factor = 1

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent
