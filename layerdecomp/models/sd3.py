"""Stable Diffusion 3 backend: three text encoders, a patch-2 MMDiT predicting a flow velocity.

Prompts are encoded with the pipeline's own ``encode_prompt`` (two CLIP encoders, whose pooled
outputs are concatenated, and T5, whose tokens join the CLIP ones); the transformer sees the
(B, C, h, w) latent and the timestep ``t = σ·T`` exactly as ``StableDiffusion3Pipeline`` passes
them. Guidance is batched CFG (:class:`~layerdecomp.models.flow.FlowBackend`); diffusers'
``guidance_scale`` is ``1 + w``.
"""

from __future__ import annotations

import torch

from ..errors import ModelSpecError
from .flow import FlowBackend
from .stable_diffusion import TextConditioning


class SD3Backend(FlowBackend):
    """Stable Diffusion 3 / 3.5 (``StableDiffusion3Pipeline``), from a loaded pipeline."""

    kind = "sd3"

    def __init__(self, spec, pipeline, device, dtype, *, kind: str = "sd3"):
        """Wrap ``pipeline``; see :class:`~layerdecomp.models.flow.FlowBackend`."""
        self.patch = int(pipeline.transformer.config.patch_size)
        super().__init__(spec, pipeline, device, dtype, kind=kind)
        if int(self.transformer.config.in_channels) != self.latent_channels:
            raise ModelSpecError(
                f"model {spec!r}: the transformer takes {self.transformer.config.in_channels} "
                f"channels, not the VAE's {self.latent_channels}; use a base text-to-image model"
            )

    @torch.no_grad()
    def encode_prompt(self, prompt="", negative_prompt="", guidance=0.0) -> TextConditioning:
        """Encode prompts with the pipeline's ``encode_prompt`` (negative ones only with CFG)."""
        cfg = guidance > 0
        if isinstance(prompt, list) and isinstance(negative_prompt, str):
            negative_prompt = [negative_prompt] * len(prompt)  # diffusers wants matching types
        embeds, negative, pooled, negative_pooled = self.pipeline.encode_prompt(
            prompt,
            None,
            None,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=cfg,
            negative_prompt=negative_prompt if cfg else None,
        )
        if not cfg:
            return TextConditioning(embeds, None, pooled, None)
        return TextConditioning(embeds, negative, pooled, negative_pooled)

    def velocity(self, latents, t, embeds, pooled) -> torch.Tensor:
        """``transformer(latents, t, …)`` as ``StableDiffusion3Pipeline`` calls it."""
        dtype = self.transformer.dtype
        return self.transformer(
            hidden_states=latents,
            timestep=t,
            encoder_hidden_states=embeds.to(dtype),
            pooled_projections=pooled.to(dtype),
            return_dict=False,
        )[0]


__all__ = ["SD3Backend"]
