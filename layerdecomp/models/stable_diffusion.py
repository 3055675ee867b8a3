"""Stable Diffusion 1.x / 2.x / SDXL backend: text conditioning, batched CFG, VAE codec.

As used in Graikos, Jojic & Samaras 2024, §4.1.

Prompts are encoded with the pipeline's own ``encode_prompt``; SDXL adds the pooled embedding of
its second text encoder and the size/crop time ids (``_get_add_time_ids``). With guidance ``w > 0``
the unconditional and conditional halves run as ONE UNet call on a doubled batch and combine as
``(1 + w)·ε_c − w·ε_u`` (the paper's convention; diffusers' ``guidance_scale`` is ``1 + w``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ModelSpecError
from .base import LatentBackend, device_timestep, guided


@dataclass
class TextConditioning:
    """Encoded prompts: conditional and (with guidance) unconditional embeddings."""

    embeds: torch.Tensor
    negative: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    negative_pooled: torch.Tensor | None = None


def _expand(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat a (P, ...) conditioning tensor to a latent batch of ``batch`` (a multiple of P)."""
    prompts = tensor.shape[0]
    if prompts == batch:
        return tensor
    if batch % prompts:
        raise ValueError(f"latent batch {batch} is not a multiple of the {prompts} prompts")
    return tensor.repeat_interleave(batch // prompts, dim=0)


class StableDiffusionBackend(LatentBackend):
    """SD 1.x, 2.x (ε or v prediction) and SDXL base, from a loaded diffusers pipeline.

    Inpainting-specific UNets (more input channels than the VAE has latent channels) are refused.
    """

    def __init__(self, spec, pipeline, device, dtype, *, kind: str):
        """Wrap ``pipeline`` (already on ``device``; see :func:`layerdecomp.models.from_pipeline`).

        Args:
            spec: the model spec, for metadata and errors.
            pipeline: a ``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline``.
            device: where the networks run.
            dtype: the networks' precision.
            kind: ``"sd"`` or ``"sdxl"``, the pipeline's family in
                :func:`~layerdecomp.models.families.families` (decided there, not here).
        """
        if kind not in ("sd", "sdxl"):
            raise ModelSpecError(f"model {spec!r}: a {kind} pipeline is not a Stable Diffusion one")
        super().__init__(spec, pipeline, device, dtype)
        self.kind = kind
        self.unet = pipeline.unet
        self._set_vae(pipeline.vae)
        if int(self.unet.config.in_channels) != self.latent_channels:
            raise ModelSpecError(
                f"model {spec!r}: the UNet takes {self.unet.config.in_channels} channels, not the "
                f"VAE's {self.latent_channels} (an inpainting-specific checkpoint?); use a base "
                "text-to-image model"
            )
        self.factor = int(pipeline.vae_scale_factor)  # diffusers: 2 ** (VAE levels − 1)
        self.size_multiple = self.factor
        self._time_ids: dict[tuple[int, int], torch.Tensor] = {}

    # ------------------------------------------------------------------ text conditioning
    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: str | list[str] = "",
        negative_prompt: str | list[str] = "",
        guidance: float = 0.0,
    ) -> TextConditioning:
        """Encode prompts with the pipeline's ``encode_prompt`` (negative ones only with CFG)."""
        cfg = guidance > 0
        if isinstance(prompt, list) and isinstance(negative_prompt, str):
            negative_prompt = [negative_prompt] * len(prompt)  # diffusers wants matching types
        negative = negative_prompt if cfg else None
        if self.kind == "sdxl":
            embeds, neg, pooled, neg_pooled = self.pipeline.encode_prompt(
                prompt,
                device=self.device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=cfg,
                negative_prompt=negative,
            )
            return TextConditioning(
                embeds, neg if cfg else None, pooled, neg_pooled if cfg else None
            )
        embeds, neg = self.pipeline.encode_prompt(
            prompt, self.device, 1, cfg, negative_prompt=negative
        )
        return TextConditioning(embeds, neg if cfg else None)

    def _add_time_ids(self, height: int, width: int) -> torch.Tensor:
        """SDXL's micro-conditioning: original size, crop (0, 0), target size, in pixels."""
        key = (height, width)
        if key not in self._time_ids:
            encoder_2 = self.pipeline.text_encoder_2
            ids = self.pipeline._get_add_time_ids(
                (height, width),
                (0, 0),
                (height, width),
                dtype=self.dtype,
                text_encoder_projection_dim=int(encoder_2.config.projection_dim),
            )
            self._time_ids[key] = ids.to(self.device)
        return self._time_ids[key]

    # ------------------------------------------------------------------ the denoiser
    def model_fn(self, cond: TextConditioning, guidance: float):
        """The raw network call ``model_fn(x_t, t) -> ε or v`` with ``cond`` and guidance bound."""
        cfg = guidance > 0
        if cfg and cond.negative is None:
            raise ValueError("guidance > 0 needs the unconditional embeddings (encode with it)")

        def call(x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
            batch = x_t.shape[0]
            latents = x_t.to(device=self.device, dtype=self.unet.dtype)
            embeds = _expand(cond.embeds, batch)
            added = None
            if self.kind == "sdxl":
                height, width = (s * self.factor for s in x_t.shape[-2:])
                ids = self._add_time_ids(height, width).expand(batch, -1)
                added = {"text_embeds": _expand(cond.pooled, batch), "time_ids": ids}
            if cfg:  # one call on [uncond; cond]
                latents = torch.cat([latents, latents])
                embeds = torch.cat([_expand(cond.negative, batch), embeds])
                if added is not None:
                    added = {
                        "text_embeds": torch.cat(
                            [_expand(cond.negative_pooled, batch), added["text_embeds"]]
                        ),
                        "time_ids": torch.cat([added["time_ids"], added["time_ids"]]),
                    }
            out = self.unet(
                latents,
                device_timestep(t, latents),
                encoder_hidden_states=embeds.to(self.unet.dtype),
                added_cond_kwargs=added,
                return_dict=False,
            )[0].to(x_t.dtype)
            return guided(out, guidance) if cfg else out

        return call


__all__ = ["StableDiffusionBackend", "TextConditioning"]
