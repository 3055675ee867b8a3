"""A layerdecomp constraint plugin: colourisation, ``y = gray(D(x̂0))``.

Installed, it registers ``colorize`` through the ``layerdecomp.constraints`` entry-point group
(see ``pyproject.toml``); ``layerdecomp constraints`` lists it and ``layerdecomp run colorize
image=gray.png output=colour.png`` runs it.
"""

from __future__ import annotations

import torch

from layerdecomp.codecs import Codec, IdentityCodec
from layerdecomp.constraints import Constraint

__version__ = "0.1.0"

LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights."""


def gray(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) → (B, 1, H, W) luminance (a linear map; pixels stay in [−1, 1])."""
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * weights).sum(1, keepdim=True)


class Colorize(Constraint):
    """Colourisation: keep the luminance of a grayscale image, y = gray(D(x̂0)).

    Args:
        y: (B or 1, 1, H, W) the luminance to keep, in [−1, 1].
        codec: the model's codec (identity for pixel models).
    """

    def __init__(self, y: torch.Tensor, *, codec: Codec | None = None):
        if not isinstance(y, torch.Tensor) or y.dim() != 4 or y.shape[1] != 1:
            raise ValueError("y: expected a (B, 1, H, W) tensor")
        self.y, self.codec = y, codec or IdentityCodec()

    @classmethod
    def from_image(cls, image: torch.Tensor, *, codec: Codec | None = None) -> Colorize:
        """The constraint of an input image (what ``layerdecomp run`` calls): its luminance."""
        return cls(gray(image), codec=codec)

    def error(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # e = −∇ ½‖y − gray(D(x̂0))‖²: backprop through the decoder only, never the denoiser
        with torch.enable_grad():
            z = x0.detach().requires_grad_(True)
            diff = self.y.to(x0.device) - gray(self.codec.decode(z))
            (grad,) = torch.autograd.grad(0.5 * diff.pow(2).sum(), z)
        residual = diff.detach().flatten(1).pow(2).mean(1).sqrt()
        return -grad.detach(), residual


__all__ = ["LUMA", "Colorize", "gray"]
