"""Model backends: ``load_model(spec)`` turns a checkpoint into a denoiser factory and a codec.

Supported: Stable Diffusion 1.x/2.x (ε or v prediction), SDXL base, and the rectified-flow
models Stable Diffusion 3 and Flux (velocity prediction, flow-matching Euler sampling), as a hub
id, a local diffusers folder or a single ``.safetensors`` checkpoint; pixel-space
``UNet2DModel`` pipelines; and ``mini``, the embedded model, once installed. See
:mod:`layerdecomp.models.resolve` for specs and :mod:`layerdecomp.models.families` for the one
table that maps a pipeline class to its family.
"""

from __future__ import annotations

import os

import torch

from ..errors import ModelSpecError
from .base import Backend, native_size, select_device, select_dtype, use_sdpa
from .families import Family, families, family_of
from .flow import FlowBackend
from .flux import FluxBackend
from .pixel import PixelBackend
from .resolve import MINI_DIR, ModelSource, load_pipeline, offline, resolve_spec
from .sd3 import SD3Backend
from .stable_diffusion import StableDiffusionBackend, TextConditioning

ModelBackend = Backend


def load_model(
    spec: str = "mini",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    config: str | os.PathLike | None = None,
    allow_pickle: bool = False,
    compile: str = "none",
) -> Backend:
    """Load a diffusion model as a backend (the denoiser contract of ``docs/algorithm.md``).

    Args:
        spec: ``mini``, a hub id (``stable-diffusion-v1-5/stable-diffusion-v1-5``), a local
            diffusers folder, or a single ``.safetensors`` checkpoint.
        device: ``None``/``"auto"`` picks cuda, then mps, then cpu.
        dtype: ``None``/``"auto"`` is float16 on a GPU and float32 on CPU (``bfloat16`` suits
            SD3 and Flux). SDXL's VAE, which asks for upcasting (``force_upcast``), stays in
            float32 under float16.
        config: for a single-file checkpoint, a local diffusers folder of the same architecture
            (needed offline: diffusers otherwise fetches it from the hub).
        allow_pickle: accept ``.ckpt``/``.bin``/``.pt`` weights (they can run arbitrary code).
        compile: ``torch.compile`` the denoising network (:func:`~.compiled.compile_backend`):
            ``none``, ``default``, ``reduce-overhead`` (CUDA graphs on a GPU) or
            ``max-autotune``. The first calls of each shape compile (slow); results match
            eager within float tolerance.

    Returns:
        A :class:`StableDiffusionBackend`, :class:`SD3Backend`, :class:`FluxBackend` or
        :class:`PixelBackend`, chosen by the pipeline class (see
        :mod:`layerdecomp.models.families`).

    Raises:
        ModelSpecError: a spec that cannot be resolved or loaded, with what to do.
    """
    from .compiled import COMPILE_MODES

    if compile not in COMPILE_MODES:
        raise ModelSpecError(f"compile: {compile!r} is not one of {', '.join(COMPILE_MODES)}")
    device = select_device(device)
    dtype = select_dtype(dtype, device)
    source = resolve_spec(spec, config=config, allow_pickle=allow_pickle)
    pipeline = load_pipeline(source, dtype=dtype, allow_pickle=allow_pickle)
    backend = from_pipeline(pipeline, spec=spec, device=device, dtype=dtype)
    backend.source = {
        "source": source.kind,
        "location": source.location,
        **({"config": source.config} if source.config else {}),
    }
    if compile != "none":
        from .compiled import compile_backend

        compile_backend(backend, compile)
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
        pipeline: a pipeline of a class in :func:`~layerdecomp.models.families.families`
            (``StableDiffusionPipeline``, ``StableDiffusionXLPipeline``,
            ``StableDiffusion3Pipeline``, ``FluxPipeline``, ``DDPMPipeline``, ``DDIMPipeline``)
            or a subclass.
        spec: the name recorded in metadata.
        device: as in :func:`load_model`.
        dtype: as in :func:`load_model`.

    Raises:
        ModelSpecError: a pipeline class outside the table, or components the backend refuses.
    """
    family = family_of(pipeline, spec)
    device = select_device(device)
    dtype = select_dtype(dtype, device)
    for name, module in pipeline.components.items():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False).eval()
            use_sdpa(module)
            upcast = family.upcast_vae and name == "vae"
            upcast = upcast and getattr(module.config, "force_upcast", False)
            target = torch.float32 if upcast and dtype == torch.float16 else dtype
            module.to(device=device)
            if module.dtype != target:
                module.to(dtype=target)
    backend = family.backend(spec, pipeline, device, dtype, kind=family.kind)
    backend.source = {"source": "pipeline"}
    return backend


__all__ = [
    "MINI_DIR",
    "Backend",
    "Family",
    "FlowBackend",
    "FluxBackend",
    "ModelBackend",
    "ModelSource",
    "ModelSpecError",
    "PixelBackend",
    "SD3Backend",
    "StableDiffusionBackend",
    "TextConditioning",
    "families",
    "from_pipeline",
    "load_model",
    "load_pipeline",
    "native_size",
    "offline",
    "resolve_spec",
    "select_device",
    "select_dtype",
]
