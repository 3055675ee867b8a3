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
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ModelSpecError
from .base import Backend, native_size, select_device, select_dtype, use_sdpa
from .families import Family, families, family_of
from .flow import FlowBackend
from .flux import FluxBackend
from .lora import Lora, load_lora, loaded_adapters
from .pixel import PixelBackend
from .resolve import MINI_DIR, ModelSource, load_pipeline, offline, resolve_spec
from .sd3 import SD3Backend
from .stable_diffusion import StableDiffusionBackend, TextConditioning

ModelBackend = Backend


def load_model(
    spec: Any = "mini",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    config: str | os.PathLike | None = None,
    allow_pickle: bool = False,
    compile: str = "none",
    lora: Sequence[str] = (),
) -> Backend:
    """Load a diffusion model as a backend (the denoiser contract of ``docs/algorithm.md``).

    Args:
        spec: ``mini``, a hub id (``stable-diffusion-v1-5/stable-diffusion-v1-5``), a local
            diffusers folder, a single ``.safetensors`` checkpoint, or a diffusers pipeline
            object, used as it is (:func:`from_pipe`: ``device`` and ``dtype`` as it says).
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
            eager within float tolerance. A pipeline object's network is compiled in place.
        lora: LoRA adapters, ``FILE[:SCALE]`` each (:func:`~.lora.load_lora`), loaded with
            diffusers' ``load_lora_weights`` and active together. Not with a pipeline object:
            load them into it first (``pipe.load_lora_weights``).

    Returns:
        A :class:`StableDiffusionBackend`, :class:`SD3Backend`, :class:`FluxBackend` or
        :class:`PixelBackend`, chosen by the pipeline class (see
        :mod:`layerdecomp.models.families`).

    Raises:
        ModelSpecError: a spec that cannot be resolved or loaded, or a LoRA that cannot, with
            what to do.
    """
    from diffusers import DiffusionPipeline

    from .compiled import COMPILE_MODES

    if compile not in COMPILE_MODES:
        raise ModelSpecError(f"compile: {compile!r} is not one of {', '.join(COMPILE_MODES)}")
    lora = (lora,) if isinstance(lora, str) else tuple(lora)
    if isinstance(spec, DiffusionPipeline):
        given = [name for name, value in (("config", config), ("lora", lora)) if value]
        if given:
            raise ModelSpecError(
                f"{given[0]}: not with a pipeline object, which is used as it is (load LoRA "
                "adapters into it with pipe.load_lora_weights first)"
            )
        backend = from_pipe(spec, device, dtype)
    else:
        spec = os.fspath(spec) if isinstance(spec, os.PathLike) else spec
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
        if lora:
            loaded = load_lora(pipeline, lora, allow_pickle=allow_pickle, spec=spec)
            backend.source["lora"] = [item.record() for item in loaded]
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
    """Take over a pipeline built or loaded for this purpose: move and cast it to
    ``device``/``dtype`` as :func:`load_model` does with the pipelines it loads.

    To use a pipeline as it is (its placement, offload hooks and dtype), see :func:`from_pipe`.

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


def from_pipe(
    pipe, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
) -> Backend:
    """Use a diffusers pipeline object as it is: also ``Backend.from_pipe(pipe)`` and
    ``load_model(pipe)``.

    Its placement is kept: the networks run on ``pipe._execution_device``, the device of
    ``enable_model_cpu_offload()`` / ``enable_sequential_cpu_offload()`` / group offloading when
    their hooks are installed (which move the weights; nothing here calls ``.to()`` on it). So
    are its LoRA adapters, attention processors and precision; the sampling scheduler is built
    from its scheduler's config, as for a loaded model. Its modules are put in ``eval()`` mode with
    ``requires_grad_(False)`` (inference only: no parameter gradients are kept).

    Args:
        pipe: a pipeline of a class in :func:`~layerdecomp.models.families.families`, or a
            subclass.
        device: ``None``/``"auto"``: where the pipeline runs. Another device moves it there
            with ``pipe.to(device)``, as diffusers does; refused for an offloaded pipeline.
        dtype: ``None``/``"auto"``: the precision of its denoising network. Another one is
            refused: a pipeline object is not re-cast (cast it yourself with
            ``pipe.to(dtype=...)``).

    Raises:
        ModelSpecError: an unsupported pipeline class (the supported ones are named), a device
            an offloaded pipeline cannot move to, or a dtype other than the pipeline's.
    """
    spec = f"<{type(pipe).__name__} object>"
    family = family_of(pipe, spec)
    device = _pipe_device(pipe, spec, device)
    network = getattr(pipe, "transformer", None)
    current = (pipe.unet if network is None else network).dtype
    if dtype is not None and dtype != "auto" and select_dtype(dtype, device) != current:
        wanted = str(select_dtype(dtype, device)).removeprefix("torch.")
        raise ModelSpecError(
            f"model {spec!r}: dtype {wanted} asked, but its network is "
            f"{str(current).removeprefix('torch.')}; a pipeline object is used as it is: cast it "
            "with pipe.to(dtype=...) first, or leave dtype out"
        )
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False).eval()
    backend = family.backend(spec, pipe, device, current, kind=family.kind)
    location = getattr(pipe, "name_or_path", None)
    adapters = sorted(loaded_adapters(pipe))
    others = {
        name: str(module.dtype).removeprefix("torch.")
        for name, module in pipe.components.items()
        if isinstance(module, torch.nn.Module) and module.dtype != current
    }
    backend.source = {
        "source": "pipeline object",
        **({"location": str(location)} if location else {}),
        **({"offload": True} if _offloaded(pipe) else {}),
        **({"adapters": adapters} if adapters else {}),
        **({"other_dtypes": others} if others else {}),
    }
    return backend


def free_model_hooks(backend) -> None:
    """End a task's run on a backend made from a pipeline object (:func:`from_pipe`) as a
    diffusers pipeline ends its ``__call__``: ``pipe.maybe_free_model_hooks()`` moves the models
    of ``enable_model_cpu_offload()`` back to the CPU (the last one run would stay on the
    accelerator) and arms their hooks again, and resets the components' stateful caches. Nothing
    for other backends (the pipelines loaded here have neither)."""
    if getattr(backend, "source", {}).get("source") != "pipeline object":
        return
    free = getattr(backend.pipeline, "maybe_free_model_hooks", None)
    if callable(free):
        free()


def _offloaded(pipe) -> bool:
    """Whether something other than ``.to()`` places ``pipe``'s weights: accelerate's hooks
    (model or sequential CPU offload), a device map, or diffusers' group offloading."""
    if getattr(pipe, "hf_device_map", None):
        return True
    group = getattr(pipe, "_maybe_raise_error_if_group_offload_active", None)
    if group is not None and group(raise_error=False):
        return True
    modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
    return any(hasattr(sub, "_hf_hook") for module in modules for sub in module.modules())


def _pipe_device(pipe, spec: str, device) -> torch.device:
    """Where ``pipe`` runs: its execution device, or ``device`` once it is moved there."""
    here = torch.device(pipe._execution_device)
    here = torch.device("cpu") if here.type == "cpu" else here
    if device is None or str(device) == "auto":
        return here
    wanted = select_device(device)
    if wanted.type == here.type and wanted.index in (None, here.index):
        return here
    if _offloaded(pipe):
        raise ModelSpecError(
            f"model {spec!r}: device {str(wanted)!r} asked, but the pipeline is offloaded and "
            f"runs on {str(here)!r}; leave device out"
        )
    pipe.to(wanted)
    return _pipe_device(pipe, spec, None)


def _from_pipe(cls: type[Backend], pipe, device=None, dtype=None) -> Backend:
    backend = from_pipe(pipe, device, dtype)
    if not isinstance(backend, cls):
        raise ModelSpecError(
            f"model {backend.spec!r}: it makes a {type(backend).__name__}, not a {cls.__name__}"
        )
    return backend


_from_pipe.__doc__ = from_pipe.__doc__
# Declared here, where the family table is in reach (base.py cannot import it: a cycle).
Backend.from_pipe = classmethod(_from_pipe)


__all__ = [
    "MINI_DIR",
    "Backend",
    "Family",
    "FlowBackend",
    "FluxBackend",
    "Lora",
    "ModelBackend",
    "ModelSource",
    "ModelSpecError",
    "PixelBackend",
    "SD3Backend",
    "StableDiffusionBackend",
    "TextConditioning",
    "families",
    "free_model_hooks",
    "from_pipe",
    "from_pipeline",
    "load_lora",
    "load_model",
    "load_pipeline",
    "native_size",
    "offline",
    "resolve_spec",
    "select_device",
    "select_dtype",
]
