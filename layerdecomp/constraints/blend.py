"""The ``blend`` constraint: two layers and a soft mask recompose an image (§4.2).

For API users who sample two layers jointly (a batch of both layers' halves) under a known mask;
the layer engine (:mod:`layerdecomp.layers`) infers masks instead and does not use it.
"""

from __future__ import annotations

import torch

from ..codecs import Codec, IdentityCodec
from .base import Constraint
from .registry import register


def _blend(mask: torch.Tensor, layer1: torch.Tensor, layer2: torch.Tensor) -> torch.Tensor:
    """``x = m·x¹ + (1−m)·x²``."""
    return mask * layer1 + (1.0 - mask) * layer2


@register("blend")
class Blend(Constraint):
    """Layer blending: x = m·x¹ + (1−m)·x², with x¹ and x² the two halves of the batch.

    x̂0 holds the first layer's samples in its first half and the second layer's in its second
    half. The error is ``−½∇‖x − m·D(x̂0¹) − (1−m)·D(x̂0²)‖²`` — exactly ``Aᵀ(x − A·x̂0)`` with
    ``A = [m, 1−m]`` for pixel models, and a backprop through the decoder only for latent ones.

    Args:
        image: (B or 1, C, H, W) pixels in [−1, 1].
        mask: (B or 1, 1, H, W) in [0, 1], the weight of the first layer.
        codec: the model's codec (identity for pixel models).
    """

    def __init__(self, image: torch.Tensor, mask: torch.Tensor, *, codec: Codec | None = None):
        if not isinstance(image, torch.Tensor) or image.dim() != 4:
            raise ValueError("image: expected a (B, C, H, W) tensor")
        if not isinstance(mask, torch.Tensor) or mask.dim() != 4 or mask.shape[1] != 1:
            raise ValueError("mask: expected a (B, 1, H, W) tensor")
        if mask.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"mask: size {tuple(mask.shape[-2:])} does not match image "
                f"{tuple(image.shape[-2:])}"
            )
        self.image, self.mask, self.codec = image, mask.to(image.dtype), codec or IdentityCodec()

    not_from_one_image = (
        "blend couples two layers under a soft mask (a batch of both layers' samples), so "
        "one image is not enough: build Blend(image, mask, codec=...) and sample a batch "
        "that holds both layers"
    )

    @classmethod
    def from_image(cls, image: torch.Tensor, *, codec=None, **arguments) -> Blend:
        """Refused: the blend constraint couples two layers under a mask, not one image."""
        raise NotImplementedError(cls.not_from_one_image)

    def error(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x0.shape[0] % 2:
            raise ValueError(f"x0: the batch ({x0.shape[0]}) must hold two layers' halves")
        with torch.enable_grad():
            z = x0.detach().requires_grad_(True)
            layer1, layer2 = self.codec.decode(z).chunk(2)
            if layer1.shape[-2:] != self.image.shape[-2:]:
                raise ValueError(
                    f"x0: decodes to size {tuple(layer1.shape[-2:])}, not the image's "
                    f"{tuple(self.image.shape[-2:])}"
                )
            mask = self.mask.to(device=layer1.device, dtype=layer1.dtype)
            diff = self.image.to(device=layer1.device, dtype=layer1.dtype) - _blend(
                mask, layer1, layer2
            )
            loss = 0.5 * diff.pow(2).sum()
            (grad,) = torch.autograd.grad(loss, z)
        residual = diff.detach().pow(2).flatten(1).mean(1).sqrt()
        return -grad.detach(), residual.repeat(2)
