"""Rectified-flow backends (Stable Diffusion 3, Flux): what SD3 and Flux share.

The transformer predicts a velocity ``v = noise − x0`` along ``x_t = (1 − σ)·x0 + σ·noise``, so
the denoiser is ``x̂0 = x_t − σ·v`` (:func:`solvers.x0_from_output` with ``"flow"``) with
``σ = t / T``: the flow-matching scheduler's timesteps are its own shifted sigmas × T. Sampling
steps diffusers' ``FlowMatchEulerDiscreteScheduler`` built from the pipeline's scheduler config,
with the pipeline's own defaults for the sigmas (Flux: ``linspace(1, 1/n, n)``) and the
resolution-dependent shift ``mu`` (``use_dynamic_shifting``: from the image's token count, as
diffusers' pipelines compute it; the sampler passes the sample's shape to ``set_timesteps``).
With guidance ``w > 0`` the unconditional and conditional halves run as ONE transformer call and
combine as ``(1 + w)·v_c − w·v_u``, the convention of every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from ..errors import ModelSpecError
from .base import LatentBackend, device_timestep, guided
from .stable_diffusion import TextConditioning, _expand


class PipelineFlowMatchScheduler(FlowMatchEulerDiscreteScheduler):
    """diffusers' flow-matching Euler scheduler, with a pipeline's defaults for its timesteps.

    ``set_timesteps(n)`` gives the timesteps the pipeline would use for ``n`` steps: the sigmas
    Flux passes (``linear_sigmas``) and, under ``use_dynamic_shifting``, the shift ``mu`` that the
    pipeline computes from the image's token count, read from ``sample_shape`` (B, C, h, w).

    Attributes:
        patch: latent pixels per token side (2 for SD3's patches and Flux's packing).
        linear_sigmas: pass ``linspace(1, 1/n, n)`` as the sigmas, as ``FluxPipeline`` does.
    """

    patch: int = 2
    linear_sigmas: bool = False
    sample_shape: tuple[int, ...] | None = None
    init_noise_sigma = 1.0  # x_1 is the noise itself (the sampler scales its start by this)

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        sigmas: Sequence[float] | None = None,
        mu: float | None = None,
        timesteps: Sequence[float] | None = None,
        sample_shape: Sequence[int] | None = None,
    ) -> None:
        """``FlowMatchEulerDiscreteScheduler.set_timesteps`` with the pipeline's defaults.

        Raises:
            ValueError: a resolution-dependent shift without ``mu`` nor ``sample_shape``.
        """
        flow_sigmas = getattr(self.config, "use_flow_sigmas", False)
        if self.linear_sigmas and sigmas is None and timesteps is None and not flow_sigmas:
            sigmas = np.linspace(1.0, 1.0 / num_inference_steps, num_inference_steps)
        if self.config.use_dynamic_shifting and mu is None:
            sample_shape = sample_shape if sample_shape is not None else self.sample_shape
            if sample_shape is None:
                raise ValueError(
                    "set_timesteps: this schedule's shift depends on the image size; pass "
                    "sample_shape=(B, C, h, w) or mu, or make the denoiser with its shape"
                )
            mu = self.shift_for(sample_shape)
        super().set_timesteps(
            num_inference_steps, device, sigmas=sigmas, mu=mu, timesteps=timesteps
        )

    def shift_for(self, sample_shape: Sequence[int]) -> float:
        """The pipelines' ``mu`` for a (B, C, h, w) latent: linear in its token count."""
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        height, width = (int(s) // self.patch for s in sample_shape[-2:])
        config = self.config
        return float(
            calculate_shift(
                height * width,
                config.base_image_seq_len,
                config.max_image_seq_len,
                config.base_shift,
                config.max_shift,
            )
        )


class FlowBackend(LatentBackend):
    """Shared by :class:`~layerdecomp.models.sd3.SD3Backend` and
    :class:`~layerdecomp.models.flux.FluxBackend`: the VAE codec, the flow-matching scheduler,
    and the guided velocity call. Subclasses encode prompts and call their transformer.

    Attributes:
        transformer: the pipeline's transformer (``SD3Transformer2DModel``,
            ``FluxTransformer2DModel``).
        patch: latent pixels per token side; image sides are multiples of ``factor × patch``.
    """

    patch = 2
    linear_sigmas = False

    def __init__(self, spec, pipeline, device, dtype, *, kind: str):
        """Wrap ``pipeline`` (already on ``device``; see :func:`layerdecomp.models.from_pipeline`).

        Args:
            spec: the model spec, for metadata and errors.
            pipeline: a ``StableDiffusion3Pipeline`` or ``FluxPipeline``.
            device: where the networks run.
            dtype: the networks' precision.
            kind: ``"sd3"`` or ``"flux"``, the pipeline's family.
        """
        if kind != self.kind:
            raise ModelSpecError(f"model {spec!r}: a {kind} pipeline is not a {self.kind} one")
        super().__init__(spec, pipeline, device, dtype)
        self.transformer = pipeline.transformer
        self._set_vae(pipeline.vae)
        self.factor = int(pipeline.vae_scale_factor)
        self.size_multiple = self.factor * self.patch

    def new_scheduler(self, config: Any = None) -> PipelineFlowMatchScheduler:
        """A fresh flow-matching Euler scheduler with the pipeline's timestep defaults."""
        scheduler = PipelineFlowMatchScheduler.from_config(config or self.scheduler.config)
        scheduler.patch, scheduler.linear_sigmas = self.patch, self.linear_sigmas
        return scheduler

    # ------------------------------------------------------------------ the denoiser
    def denoiser(self, prompt="", negative_prompt="", guidance=0.0, *, shape=None):
        """:meth:`LatentBackend.denoiser`, its scheduler bound to the latent ``shape`` it will
        sample (the resolution-dependent shift of SD3 and Flux schedules reads it)."""
        denoiser = super().denoiser(prompt, negative_prompt, guidance, shape=shape)
        denoiser.scheduler.sample_shape = None if shape is None else tuple(shape)
        return denoiser

    def encode_prompt(self, prompt="", negative_prompt="", guidance=0.0) -> TextConditioning:
        """Encode prompts with the pipeline's ``encode_prompt`` (negative ones only with CFG)."""
        raise NotImplementedError

    def velocity(self, latents: torch.Tensor, t: torch.Tensor, embeds, pooled) -> torch.Tensor:
        """One transformer call on a (B, C, h, w) batch at timestep ``t`` (one per sample)."""
        raise NotImplementedError

    def model_fn(self, cond: TextConditioning, guidance: float):
        """The raw network call ``model_fn(x_t, t) -> v`` with ``cond`` and guidance bound."""
        cfg = guidance > 0
        if cfg and cond.negative is None:
            raise ValueError("guidance > 0 needs the unconditional embeddings (encode with it)")

        def call(x_t: torch.Tensor, t: int | float | torch.Tensor) -> torch.Tensor:
            batch = x_t.shape[0]
            latents = x_t.to(device=self.device, dtype=self.transformer.dtype)
            embeds, pooled = _expand(cond.embeds, batch), _expand(cond.pooled, batch)
            if cfg:  # one call on [uncond; cond]
                latents = torch.cat([latents, latents])
                embeds = torch.cat([_expand(cond.negative, batch), embeds])
                pooled = torch.cat([_expand(cond.negative_pooled, batch), pooled])
            t = float(t) if isinstance(t, int | float) else t
            timestep = device_timestep(t, latents).to(torch.float32)
            timestep = timestep.reshape(-1).expand(latents.shape[0])
            out = self.velocity(latents, timestep, embeds, pooled).to(x_t.dtype)
            return guided(out, guidance) if cfg else out

        return call


__all__ = ["FlowBackend", "PipelineFlowMatchScheduler"]
