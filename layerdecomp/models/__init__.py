"""Model backends: ``load_model(spec)`` turns a checkpoint into a denoiser factory and a codec.

Supported: Stable Diffusion 1.x/2.x (ε or v prediction) and SDXL base, as a hub id, a local
diffusers folder or a single ``.safetensors`` checkpoint; pixel-space ``UNet2DModel`` pipelines;
and ``mini``, the embedded model, once installed. See :mod:`layerdecomp.models.resolve` for specs.
"""

from __future__ import annotations

import os

import torch

from ..errors import ModelSpecError
from .base import Backend, select_device, select_dtype
from .pixel import PixelBackend
from .resolve import MINI_DIR, ModelSource, load_pipeline, offline, resolve_spec
from .stable_diffusion import StableDiffusionBackend, TextConditioning

ModelBackend = Backend


def _use_sdpa(module) -> None:
    """Replace classic attention processors by PyTorch's scaled-dot-product ones (SDPA)."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    processors = getattr(module, "attn_processors", None)
    if processors and any(type(p) is AttnProcessor for p in processors.values()):
        if all(type(p) in (AttnProcessor, AttnProcessor2_0) for p in processors.values()):
            module.set_attn_processor(AttnProcessor2_0())


def load_model(
    spec: str = "mini",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    config: str | os.PathLike | None = None,
    allow_pickle: bool = False,
) -> Backend:
    """Load a diffusion model as a backend (DESIGN.md, "Model backend").

    Args:
        spec: ``mini``, a hub id (``stable-diffusion-v1-5/stable-diffusion-v1-5``), a local
            diffusers folder, or a single ``.safetensors`` checkpoint.
        device: ``None``/``"auto"`` picks cuda, then mps, then cpu.
        dtype: ``None``/``"auto"`` is float16 on a GPU and float32 on CPU. SDXL's VAE, which
            asks for upcasting (``force_upcast``), stays in float32 under float16.
        config: for a single-file checkpoint, a local diffusers folder of the same architecture
            (needed offline: diffusers otherwise fetches it from the hub).
        allow_pickle: accept ``.ckpt``/``.bin``/``.pt`` weights (they can run arbitrary code).

    Returns:
        A :class:`StableDiffusionBackend` or :class:`PixelBackend`.

    Raises:
        ModelSpecError: a spec that cannot be resolved or loaded, with what to do.
    """
    device = select_device(device)
    dtype = select_dtype(dtype, device)
    source = resolve_spec(spec, config=config, allow_pickle=allow_pickle)
    pipeline = load_pipeline(source, dtype=dtype, allow_pickle=allow_pickle)
    backend = from_pipeline(pipeline, spec=spec, device=device, dtype=dtype)
    backend.source = {
        "source": source.kind,
        "location": source.location,
        "attention": "sdpa",
        **({"config": source.config} if source.config else {}),
    }
    return backend


def from_pipeline(
    pipeline,
    *,
    spec: str = "<pipeline>",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> Backend:
    """Wrap an already built or loaded diffusers pipeline as a backend (moved to device/dtype).

    Args:
        pipeline: an SD 1.x/2.x, SDXL or pixel-space ``UNet2DModel`` pipeline.
        spec: the name recorded in metadata.
        device, dtype: as in :func:`load_model`.
    """
    device = select_device(device)
    dtype = select_dtype(dtype, device)
    pixel = getattr(pipeline, "vae", None) is None
    xl = getattr(pipeline, "text_encoder_2", None) is not None
    for name, module in pipeline.components.items():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False).eval()
            _use_sdpa(module)
            # SDXL's VAE overflows in float16 (``force_upcast``), as in diffusers' XL pipeline
            upcast = xl and name == "vae" and getattr(module.config, "force_upcast", False)
            target = torch.float32 if upcast and dtype == torch.float16 else dtype
            module.to(device=device)
            if module.dtype != target:
                module.to(dtype=target)
    cls = PixelBackend if pixel else StableDiffusionBackend
    backend = cls(spec, pipeline, device, dtype)
    backend.source = {"source": "pipeline", "attention": "sdpa"}
    return backend


__all__ = [
    "MINI_DIR",
    "Backend",
    "ModelBackend",
    "ModelSource",
    "ModelSpecError",
    "PixelBackend",
    "StableDiffusionBackend",
    "TextConditioning",
    "from_pipeline",
    "load_model",
    "load_pipeline",
    "offline",
    "resolve_spec",
    "select_device",
    "select_dtype",
]
