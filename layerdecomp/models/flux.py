"""Flux backend: packed 2×2 latents, a guidance embedding, no CFG by default.

``FluxPipeline`` runs its transformer on *packed* latents, each 2×2 patch of the (B, C, h, w)
latent one token of 4C channels, positioned by latent image ids. Packing and unpacking happen
here, inside :meth:`FluxBackend.velocity` (a pure permutation, so ``x̂0 = x_t − σ·v`` holds per
element): constraints and the layer engine see (B, C, h, w) latents like every other model.

Flux-dev is guidance-distilled: the guidance it was distilled for enters as an embedding
(:attr:`FluxBackend.embedded_guidance`, 3.5 as ``FluxPipeline``'s default ``guidance_scale``), not
as two network calls; ``guidance`` w > 0 adds true CFG on top (diffusers' ``true_cfg_scale`` is
``1 + w``), batched like every backend's. The transformer gets ``t / 1000`` (σ), as the pipeline
passes it.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ModelSpecError
from .flow import FlowBackend
from .stable_diffusion import TextConditioning

FLUX_DEFAULT_GUIDANCE = 3.5
"""``FluxPipeline``'s default ``guidance_scale``: the embedded guidance of guidance-distilled
models."""


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) → (B, h/2 · w/2, 4C): ``FluxPipeline._pack_latents``."""
    from diffusers import FluxPipeline

    batch, channels, height, width = latents.shape
    return FluxPipeline._pack_latents(latents, batch, channels, height, width)


def unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, h/2 · w/2, 4C) → (B, C, h, w), the inverse of :func:`pack` (h, w in latent pixels)."""
    from diffusers import FluxPipeline

    # _unpack_latents takes the image size and its VAE factor; factor 1 means latent pixels
    return FluxPipeline._unpack_latents(tokens, height, width, 1)


class FluxBackend(FlowBackend):
    """Flux.1 dev / schnell (``FluxPipeline``), from a loaded pipeline.

    Attributes:
        embedded_guidance: the guidance embedding's value for guidance-distilled transformers
            (``guidance_embeds``); ignored by the others (schnell).
    """

    kind = "flux"
    patch = 2
    linear_sigmas = True  # FluxPipeline passes sigmas = linspace(1, 1/n, n)

    def __init__(self, spec, pipeline, device, dtype, *, kind: str = "flux"):
        """Wrap ``pipeline``; see :class:`~layerdecomp.models.flow.FlowBackend`."""
        super().__init__(spec, pipeline, device, dtype, kind=kind)
        channels = int(self.transformer.config.in_channels)
        if channels != 4 * self.latent_channels:
            raise ModelSpecError(
                f"model {spec!r}: the transformer takes {channels} channels, not 4 × the VAE's "
                f"{self.latent_channels} (a Fill/Depth/Canny checkpoint?); use a base "
                "text-to-image model"
            )
        self.embedded_guidance = FLUX_DEFAULT_GUIDANCE
        self._ids: dict[tuple[int, int], torch.Tensor] = {}

    @torch.no_grad()
    def encode_prompt(self, prompt="", negative_prompt="", guidance=0.0) -> TextConditioning:
        """Encode prompts with the pipeline's ``encode_prompt`` (T5 tokens, pooled CLIP)."""
        embeds, pooled, _ = self.pipeline.encode_prompt(prompt, None, device=self.device)
        if not guidance > 0:
            return TextConditioning(embeds, None, pooled, None)
        if isinstance(prompt, list) and isinstance(negative_prompt, str):
            negative_prompt = [negative_prompt] * len(prompt)
        negative, negative_pooled, _ = self.pipeline.encode_prompt(
            negative_prompt, None, device=self.device
        )
        return TextConditioning(embeds, negative, pooled, negative_pooled)

    def _image_ids(self, height: int, width: int) -> torch.Tensor:
        """Latent image ids of an h × w latent (one row per packed token)."""
        key = (height, width)
        if key not in self._ids:
            self._ids[key] = self.pipeline._prepare_latent_image_ids(
                None, height // 2, width // 2, self.device, self.transformer.dtype
            )
        return self._ids[key]

    def velocity(self, latents, t, embeds, pooled) -> torch.Tensor:
        """Pack, ``transformer(tokens, t / 1000, …)`` as ``FluxPipeline`` calls it, unpack."""
        batch, _, height, width = latents.shape
        dtype = self.transformer.dtype
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full((batch,), self.embedded_guidance, device=self.device)
        text_ids = torch.zeros(embeds.shape[1], 3, device=self.device, dtype=dtype)
        tokens = self.transformer(
            hidden_states=pack(latents),
            timestep=t.to(dtype) / 1000,
            guidance=guidance,
            pooled_projections=pooled.to(dtype),
            encoder_hidden_states=embeds.to(dtype),
            txt_ids=text_ids,
            img_ids=self._image_ids(height, width),
            return_dict=False,
        )[0]
        return unpack(tokens, height, width)

    def describe(self) -> dict[str, Any]:
        """The base summary plus the embedded guidance (``None`` without a guidance embedding)."""
        embedded = self.embedded_guidance if self.transformer.config.guidance_embeds else None
        return {**super().describe(), "embedded_guidance": embedded}


__all__ = ["FLUX_DEFAULT_GUIDANCE", "FluxBackend", "pack", "unpack"]
