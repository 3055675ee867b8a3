"""What the framework needs of a model: :class:`Codec` (images ↔ model space, for constraints)
and :class:`Backend` (a codec that also makes denoisers, for the tasks and the layer engine).

Every backend of :mod:`layerdecomp.models` satisfies :class:`Backend`; so can a test's toy model
or a third party's, without subclassing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Codec(Protocol):
    """What a constraint needs of a model: its spatial ``factor``, ``encode`` and ``decode``.

    ``encode`` returns the latent mean times the VAE scaling factor for latent models.
    """

    factor: int

    def encode(self, image: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latent: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Backend(Codec, Protocol):
    """A loaded model as the tasks and the layer engine use it.

    ``denoiser(prompt, negative_prompt, guidance, shape=...)`` returns the x̂0 contract
    ``x0_hat(x_t, t)`` (a :class:`solvers.Denoiser`) with its scheduler; ``shape`` is the latent
    shape it will sample (:meth:`latent_shape`), which some schedules need. Images are
    (B, 3, H, W) in [−1, 1] with sides a multiple of ``size_multiple``.
    """

    device: torch.device
    dtype: torch.dtype
    size_multiple: int
    latent_channels: int
    scheduler: Any

    def denoiser(
        self,
        prompt: str | list[str] = "",
        negative_prompt: str | list[str] = "",
        guidance: float = 0.0,
        *,
        shape: tuple[int, ...] | None = None,
    ) -> Callable[[torch.Tensor, Any], torch.Tensor]: ...

    def latent_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]: ...

    def describe(self) -> dict[str, Any]: ...


class IdentityCodec:
    """The codec of a pixel-space model: the model space is the image space."""

    factor = 1

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent
