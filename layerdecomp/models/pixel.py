"""Pixel-space backend: an unconditional ``UNet2DModel`` (e.g. a DDPM pipeline), identity codec."""

from __future__ import annotations

import torch

from ..errors import ModelSpecError
from .base import Backend, device_timestep


class PixelBackend(Backend):
    """A pixel-space diffusion model: the model space is the image space (factor 1)."""

    kind = "pixel"

    def __init__(self, spec, pipeline, device, dtype, *, kind: str = "pixel"):
        """Wrap ``pipeline`` (already on ``device``; see :func:`layerdecomp.models.from_pipeline`).

        Args:
            spec: the model spec, for metadata and errors.
            pipeline: a pipeline holding a ``UNet2DModel`` (``unet``) and a scheduler.
            device: where the network runs.
            dtype: the network's precision.
            kind: the family's kind; only ``"pixel"``.
        """
        if kind != "pixel":
            raise ModelSpecError(f"model {spec!r}: a {kind} pipeline is not a pixel-space one")
        super().__init__(spec, pipeline, device, dtype)
        self.unet = pipeline.unet
        channels = int(self.unet.config.in_channels)
        if channels != 3 or int(self.unet.config.out_channels) != 3:
            raise ModelSpecError(
                f"model {spec!r}: a pixel-space UNet must map 3 channels to 3, not "
                f"{channels} to {self.unet.config.out_channels}"
            )
        if getattr(self.unet.config, "class_embed_type", None) or getattr(
            self.unet.config, "num_class_embeds", None
        ):
            raise ModelSpecError(f"model {spec!r}: class-conditional UNets are not supported")
        self.latent_channels = 3
        self.factor = 1
        # UNet2DModel concatenates skips at every level: sides must halve exactly.
        self.size_multiple = 2 ** (len(self.unet.config.block_out_channels) - 1)

    def encode_prompt(self, prompt="", negative_prompt="", guidance=0.0) -> None:
        """Nothing to condition: prompts and guidance are refused."""
        if prompt or negative_prompt or guidance:
            raise ModelSpecError(
                f"model {self.spec!r} is an unconditional pixel-space model: it takes no prompt, "
                "negative prompt or guidance"
            )

    def model_fn(self, cond: None = None, guidance: float = 0.0):
        """The raw network call ``model_fn(cond, guidance)(x_t, t)`` (no conditioning)."""

        def call(x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
            x = x_t.to(device=self.device, dtype=self.unet.dtype)
            timestep = device_timestep(t, x)
            return self.unet(x, timestep, return_dict=False)[0].to(x_t.dtype)

        return call

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Identity (float32)."""
        return image.to(device=self.device, dtype=torch.float32)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Identity."""
        return latent


__all__ = ["PixelBackend"]
