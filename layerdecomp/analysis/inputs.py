"""The clean latent the Jacobian is measured around: an image encoded by the model's codec, or a
seeded Gaussian latent, at a work size the model accepts."""

from __future__ import annotations

import torch
from PIL import Image

from ..io import image_to_tensor
from ..models.base import native_size
from ..tasks.tiles import round_up


def work_size(backend, image_size: tuple[int, int] | None, side: int | None) -> tuple[int, int]:
    """The (width, height) in pixels the model works at, each a multiple of its size multiple.

    Args:
        backend: the model (``size_multiple``, and its native size for the default).
        image_size: the image's (width, height); ``None`` for a square random latent.
        side: the longer side in pixels; ``None``: the model's native size (512 px when the
            backend does not say).
    """
    multiple = int(backend.size_multiple)
    native = native_size(backend)
    if image_size is None:
        width, height = (side, side) if side else native
    else:
        longer = side or max(native)
        scale = longer / max(image_size)
        width, height = (max(1, round(s * scale)) for s in image_size)
    return round_up(width, multiple), round_up(height, multiple)


def clean_latent(
    backend, image: Image.Image | None = None, side: int | None = None, seed: int = 0
) -> torch.Tensor:
    """The clean latent (1, C, h, w), float32 on the backend's device.

    With ``image``: resized (Lanczos) to :func:`work_size` and encoded by ``backend.encode``
    (the VAE posterior mean; the identity for pixel models). Without: standard Gaussian, in the
    model space of a :func:`work_size` image: the second draw of ``Generator().manual_seed(seed)``
    (the first is the noise :func:`~layerdecomp.analysis.jacobian.diffuse` adds with that seed).
    """
    width, height = work_size(backend, None if image is None else image.size, side)
    if image is None:
        shape = backend.latent_shape(1, height, width)
        generator = torch.Generator().manual_seed(seed)
        torch.randn(shape, generator=generator)  # the diffusion noise's draw
        return torch.randn(shape, generator=generator).to(backend.device)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    with torch.no_grad():
        return backend.encode(image_to_tensor(image).to(backend.device)).float()


__all__ = ["clean_latent", "work_size"]
