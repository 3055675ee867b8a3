"""The ``mask`` constraint: inpainting as a linear constraint in model space (§4.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..codecs import Codec, IdentityCodec
from .base import Constraint
from .registry import register


def latent_mask(known: torch.Tensor, factor: int) -> torch.Tensor:
    """Reduce a pixel mask (1 = known) to model space: a cell is known only if fully known.

    The mask is average-pooled by the codec factor and thresholded at 1, so the known region
    shrinks (§4.1; ``docs/algorithm.md``, "mask (inpainting)"). Identity for ``factor == 1``.
    """
    if factor == 1:
        return known
    pooled = F.avg_pool2d(known.float(), kernel_size=factor, stride=factor)
    return (pooled >= 1.0 - 1e-6).to(known.dtype)


@register("mask")
class Mask(Constraint):
    """Inpainting: keep the known pixels of an image (A = diag(mask) in model space).

    Args:
        image: (B or 1, C, H, W) pixels in [−1, 1].
        known: (B or 1, 1, H, W), 1 where the pixel is known (kept), 0 where it is to be filled.
        codec: the model's codec (identity for pixel models); ``y = codec.encode(image·known)``.
    """

    def __init__(self, image: torch.Tensor, known: torch.Tensor, *, codec: Codec | None = None):
        codec = codec or IdentityCodec()
        if not isinstance(image, torch.Tensor) or image.dim() != 4:
            raise ValueError("image: expected a (B, C, H, W) tensor")
        if not isinstance(known, torch.Tensor) or known.dim() != 4 or known.shape[1] != 1:
            raise ValueError("known: expected a (B, 1, H, W) tensor")
        if known.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"known: size {tuple(known.shape[-2:])} does not match image "
                f"{tuple(image.shape[-2:])}"
            )
        if any(s % codec.factor for s in image.shape[-2:]):
            raise ValueError(
                f"image: size {tuple(image.shape[-2:])} is not a multiple of the codec factor "
                f"{codec.factor}"
            )
        known = known.to(image.dtype)
        with torch.no_grad():
            y = codec.encode(image * known)
        self.y = y
        self.mask = latent_mask(known, codec.factor).to(dtype=y.dtype, device=y.device)

    @classmethod
    def from_image(cls, image: torch.Tensor, *, codec: Codec | None = None, mask=None) -> Mask:
        """Inpaint ``image`` where ``mask`` is white (``layerdecomp run mask mask=holes.png``).

        Args:
            image: (1, C, H, W) pixels in [−1, 1].
            codec: the model's codec.
            mask: a mask file, PIL image or (1, 1, h, w) tensor, white (1) = fill; of the image's
                size or resized to it (a pixel touched by the fill region is filled).
        """
        if mask is None:
            raise ValueError("give the region to fill: mask=PATH (white = fill)")
        if not isinstance(mask, torch.Tensor):
            from PIL import Image

            from ..io import load_mask, mask_to_tensor

            image_mask = mask if isinstance(mask, Image.Image) else load_mask(mask)
            mask = mask_to_tensor(image_mask.convert("L"))
        fill = mask.float().to(image.device)
        if fill.shape[-2:] != image.shape[-2:]:
            fill = F.interpolate(fill, size=image.shape[-2:], mode="bilinear") > 0
        return cls(image, 1.0 - fill.to(image.dtype), codec=codec)

    @classmethod
    def in_model_space(cls, y: torch.Tensor, mask: torch.Tensor) -> Mask:
        """A mask constraint given directly in model space (``mask`` broadcasts against ``y``)."""
        self = cls.__new__(cls)
        self.y, self.mask = y, mask.to(y.dtype)
        return self

    def error(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x0.shape[-2:] != self.y.shape[-2:]:
            raise ValueError(
                f"x0: size {tuple(x0.shape[-2:])} does not match the measurement "
                f"{tuple(self.y.shape[-2:])}"
            )
        mask = self.mask.to(dtype=x0.dtype, device=x0.device)
        e = mask * (self.y.to(dtype=x0.dtype, device=x0.device) - x0)
        count = mask.expand_as(e).flatten(1).sum(1).clamp_min(1.0)
        residual = (e.pow(2).flatten(1).sum(1) / count).sqrt()
        return e, residual
