"""The model backend contract (``docs/algorithm.md``) and device/precision selection.

A backend turns a loaded diffusers pipeline into what the solvers and constraints need: a
denoiser factory with text conditioning and guidance bound (Graikos, Jojic & Samaras 2024, §2.1:
the network output read as the x̂0 estimate), the codec
(``encode``/``decode``/``factor``, so a backend can be passed as ``codec=`` to a constraint),
and a sampling scheduler (DDIM; flow-matching Euler for rectified-flow models).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import DDIMScheduler

from solvers import Denoiser, scheduler_prediction_type

from ..errors import ModelSpecError
from .memory import MemoryPlan, condition_rows, module_bytes, run_chunks

_DTYPES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
}


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, or the best available one: cuda, then mps, then cpu."""
    if device is not None and str(device) != "auto":
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ModelSpecError(f"device {device!r}: {exc}") from None
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ModelSpecError(f"device {device!r}: CUDA is not available on this machine")
        if resolved.type == "mps" and not _mps_available():
            raise ModelSpecError(f"device {device!r}: MPS is not available on this machine")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The requested precision, or the default: float16 on a GPU (cuda, mps), float32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    try:
        return _DTYPES[str(dtype).lower().removeprefix("torch.")]
    except KeyError:
        known = ", ".join(["auto", *sorted(set(_DTYPES))])
        raise ModelSpecError(f"dtype {dtype!r} is not one of {known}") from None


def device_timestep(t: Any, sample: torch.Tensor) -> Any:
    """The timestep ``t`` as a tensor on ``sample``'s device, without a host sync.

    A number becomes ``torch.full((), t)`` on the device: a fill kernel, where
    ``torch.tensor(t, device=...)`` or ``.to(device)`` would be a blocking host-to-device copy
    (``cudaStreamSynchronize``; what diffusers' UNet does with a number). A CPU tensor is
    copied (that one syncs); a device tensor is returned as it is.
    """
    if isinstance(t, int | float):
        dtype = torch.int64 if isinstance(t, int) else torch.float32
        return torch.full((), t, dtype=dtype, device=sample.device)
    if isinstance(t, torch.Tensor) and t.device != sample.device:
        return t.to(sample.device)
    return t


class Backend:
    """A loaded model: denoiser factory, codec and sampling scheduler.

    Attributes:
        spec: the model spec it was loaded from.
        kind: ``"sd"``, ``"sdxl"``, ``"pixel"``, ``"sd3"`` or ``"flux"``.
        pipeline: the diffusers pipeline that holds the components.
        scheduler: built from the pipeline's scheduler config by :meth:`new_scheduler`: a
            :class:`~diffusers.DDIMScheduler`, or flow-matching Euler for SD3 and Flux.
        factor: spatial factor between image and model space (8 for SD's VAE, 1 for pixels).
        size_multiple: image sides must be a multiple of this (at least ``factor``).
        latent_channels: channels of the model space.
        prediction_type: what the network predicts (``epsilon``, ``v_prediction``, ``sample``,
            ``flow``).
        device, dtype: where and in which precision the networks run. The solver works in
            float32; backends cast at the network boundary.
        max_memory: the memory budget in GiB (``ModelOptions.max_memory``;
            :meth:`set_memory_budget`): the network's batches and the decodes run in chunks
            that fit it (:class:`~layerdecomp.models.memory.MemoryPlan`); ``None``: the free
            memory on a GPU, no limit elsewhere.
    """

    spec: str
    kind: str
    pipeline: Any
    scheduler: DDIMScheduler
    factor: int
    size_multiple: int
    latent_channels: int
    prediction_type: str
    device: torch.device
    dtype: torch.dtype
    max_memory: float | None = None
    _memory: MemoryPlan | None = None

    def __init__(self, spec: str, pipeline: Any, device: torch.device, dtype: torch.dtype):
        self.spec, self.pipeline, self.device, self.dtype = spec, pipeline, device, dtype
        self.scheduler = self.new_scheduler(pipeline.scheduler.config)
        self.prediction_type = scheduler_prediction_type(self.scheduler)
        self.source: dict[str, Any] = {}

    def new_scheduler(self, config: Any = None) -> DDIMScheduler:
        """A fresh DDIM scheduler (schedulers are stateful: one per sampling run).

        Args:
            config: a scheduler config to build it from; default this backend's.
        """
        return DDIMScheduler.from_config(config or self.scheduler.config)

    def set_memory_budget(self, gib: float | None) -> None:
        """Run the network's batches and the decodes in chunks that fit ``gib`` GiB on the device
        (``None``: the default, see :attr:`max_memory`). The results do not change.

        Raises:
            ModelSpecError: ``gib`` is not positive.
        """
        costs = None if self._memory is None else self._memory.costs
        self._memory = MemoryPlan(self.device, gib, self._resident_bytes, costs)
        self.max_memory = gib

    @property
    def memory(self) -> MemoryPlan:
        """The chunk sizes under :attr:`max_memory` (made again when it changes)."""
        if self._memory is None or self._memory.max_memory != self.max_memory:
            self.set_memory_budget(self.max_memory)
        assert self._memory is not None
        return self._memory

    def _resident_bytes(self) -> int:
        return module_bytes(getattr(self.pipeline, "components", {}).values(), self.device)

    def denoiser(
        self,
        prompt: str | list[str] = "",
        negative_prompt: str | list[str] = "",
        guidance: float = 0.0,
        *,
        shape: tuple[int, ...] | None = None,
    ) -> Denoiser:
        """A :class:`solvers.Denoiser` with conditioning and guidance bound.

        ``shape`` is the latent shape it will sample (:meth:`latent_shape`): schedules whose
        timesteps depend on the image size (SD3, Flux) read it; the others ignore it.
        """
        return Denoiser(
            self.chunked_model_fn(self.encode_prompt(prompt, negative_prompt, guidance), guidance),
            self.new_scheduler(),
            self.prediction_type,
        )

    def chunked_model_fn(self, cond: Any, guidance: float) -> Callable[..., torch.Tensor]:
        """:meth:`model_fn` run in chunks of rows that fit :attr:`memory` (each chunk with its
        rows' conditioning, :func:`~layerdecomp.models.memory.condition_rows`); one call when
        the batch fits, as without a budget."""
        full = self.model_fn(cond, guidance)
        parts: dict[tuple[int, int, int], Callable[..., torch.Tensor]] = {}

        def call(x_t: torch.Tensor, t: Any) -> torch.Tensor:
            batch = x_t.shape[0]
            if not self.memory.limited:
                return full(x_t, t)

            def rows(start: int, stop: int, x: torch.Tensor) -> torch.Tensor:
                if stop - start == batch:
                    return full(x, t)
                if (batch, start, stop) not in parts:
                    part = condition_rows(cond, batch, start, stop)
                    if part is None:  # rows that do not match the prompts: the network says so
                        return full(x, t)
                    parts[(batch, start, stop)] = self.model_fn(part, guidance)
                batched = isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape[0] == batch
                return parts[(batch, start, stop)](x, t[start:stop] if batched else t)

            return run_chunks(rows, x_t, self.memory.rows("network", x_t, rows))

        return call

    def encode_prompt(self, prompt="", negative_prompt="", guidance=0.0) -> Any:
        """The conditioning of ``prompt`` (and, with guidance, ``negative_prompt``)."""
        raise NotImplementedError

    def model_fn(self, cond: Any, guidance: float) -> Callable[[torch.Tensor, Any], torch.Tensor]:
        """The raw network call ``model_fn(cond, guidance)(x_t, t) -> output`` (ε, v, x0 or a
        velocity, as ``prediction_type`` says), the conditioning and guidance bound."""
        raise NotImplementedError

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W) in [−1, 1] → model space (float32)."""
        raise NotImplementedError

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Model space → image (B, 3, H, W) in about [−1, 1], in the latent's dtype."""
        raise NotImplementedError

    def latent_shape(self, batch: int, height: int, width: int) -> tuple[int, int, int, int]:
        """Shape of the model-space tensor for ``batch`` images of ``height`` × ``width`` pixels."""
        return (batch, self.latent_channels, height // self.factor, width // self.factor)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for run metadata.

        ``attention`` names the attention processor classes installed in each component now
        (e.g. ``{"unet": "AttnProcessor2_0", "vae": "AttnProcessor2_0"}``).
        """
        return {
            "spec": self.spec,
            "kind": self.kind,
            "pipeline": type(self.pipeline).__name__,
            "prediction_type": self.prediction_type,
            "factor": self.factor,
            "size_multiple": self.size_multiple,
            "latent_channels": self.latent_channels,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "attention": attention_processors(self.pipeline),
            **self.source,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(spec={self.spec!r}, kind={self.kind!r}, "
            f"device={str(self.device)!r}, dtype={self.dtype})"
        )


DECODE_PIXELS = 1 << 20
"""Default of :attr:`LatentBackend.decode_pixels`: one 1024² image, four at 512², all of mini's.

A VAE decoder's working memory grows with the pixels it makes (SD's architecture: about 3.1 KB
per pixel in float32, ``benchmarks/decode_memory.py``), and the layer engine decodes its L·R·K
samples together: 30 at the defaults, which made a decomposition peak at 106 GiB for SDXL at
1024² (its VAE runs in float32) and 18 GiB for SD 1.5 at 512². A slice of 2²⁰ pixels keeps one
decode near 3 GiB in float32.
"""


class LatentBackend(Backend):
    """A backend whose model space is a VAE's latents: the VAE codec shared by SD and flow models.

    Latents are ``(VAE posterior mean − shift factor) × scaling factor``, as diffusers' pipelines
    make them (the shift is 0 for SD 1.x/2.x/XL).
    """

    def _set_vae(self, vae: Any) -> None:
        self.vae = vae
        self.latent_channels = int(vae.config.latent_channels)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Image in [−1, 1] → (VAE latent mean − shift factor) × scaling factor (float32)."""
        x = image.to(device=self.device, dtype=self.vae.dtype)
        mean = self.vae.encode(x).latent_dist.mean
        return ((mean.float() - self.shift_factor) * self.scaling_factor).float()

    decode_pixels: int = DECODE_PIXELS
    """The most image pixels one VAE decoder call makes (:data:`DECODE_PIXELS`; 0: no limit)."""

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent → image in about [−1, 1] (differentiable: pixel constraints backprop here).

        A batch is decoded in slices of at most :attr:`decode_pixels` output pixels (at least one
        image a call), joined in order: what diffusers' ``vae.enable_slicing()`` does one image
        at a time, but sized so that small images still go through in one call; and in slices
        that fit :attr:`memory` (checkpointed under autograd).
        """
        z = latent / self.scaling_factor + self.shift_factor
        z = z.to(device=self.device, dtype=self.vae.dtype)
        per_image = z.shape[-2] * z.shape[-1] * self.factor**2
        step = max(1, self.decode_pixels // per_image) if self.decode_pixels else z.shape[0]

        def rows(start: int, stop: int, part: torch.Tensor) -> torch.Tensor:
            return self.vae.decode(part).sample

        fits = self.memory.rows("decode", z, rows) if self.memory.limited else step
        # the graph of every slice is kept unless the budget needs checkpoints
        return run_chunks(rows, z, min(step, fits), checkpoint=fits < step).to(latent.dtype)

    def denoiser(self, prompt="", negative_prompt="", guidance=0.0, *, shape=None) -> Denoiser:
        """A denoiser conditioned on ``prompt``; ``guidance`` w > 0 adds batched CFG.

        Subclasses give ``encode_prompt(prompt, negative_prompt, guidance)`` (the conditioning)
        and ``model_fn(cond, guidance)`` (the network's output for ``(x_t, t)``).

        Args:
            prompt: one prompt, or one per image (the latent batch must be a multiple).
            negative_prompt: the unconditional prompt (used only with guidance).
            guidance: w in ``(1 + w)·out_c − w·out_u``; 0 runs the conditional batch alone.
            shape: the latent shape it will sample (see :meth:`Backend.denoiser`).
        """
        if guidance < 0:
            raise ValueError(f"guidance: expected ≥ 0, got {guidance}")
        return super().denoiser(prompt, negative_prompt, guidance, shape=shape)


def guided(out: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance of a batch ``[unconditional; conditional]``:
    ``(1 + w)·conditional − w·unconditional``."""
    uncond, conditional = out.chunk(2)
    return (1.0 + guidance) * conditional - guidance * uncond


def _attention_modules(module: torch.nn.Module):
    """The attention layers of ``module``: diffusers modules that hold a swappable processor."""
    for sub in module.modules():
        if hasattr(sub, "set_processor") and getattr(sub, "processor", None) is not None:
            yield sub


def attention_processors(pipeline: Any) -> dict[str, str]:
    """The attention processor classes installed in each component of ``pipeline``.

    Returns:
        Component name → class name (several, comma-separated and sorted, when they differ);
        components without attention layers are left out.
    """
    found: dict[str, str] = {}
    for name, module in getattr(pipeline, "components", {}).items():
        if isinstance(module, torch.nn.Module):
            names = {type(sub.processor).__name__ for sub in _attention_modules(module)}
            if names:
                found[name] = ", ".join(sorted(names))
    return found


def use_sdpa(module: torch.nn.Module) -> None:
    """Swap each classic ``AttnProcessor`` for PyTorch's scaled-dot-product one (SDPA).

    Other processors (sliced, xFormers, adapters...) are left in place;
    :func:`attention_processors` reports what is installed.
    """
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    for sub in _attention_modules(module):
        if type(sub.processor) is AttnProcessor:
            sub.set_processor(AttnProcessor2_0())


def native_size(
    backend: Backend, default: tuple[int, int] | None = (512, 512)
) -> tuple[int, int] | None:
    """The (width, height) the model was trained at: its sample size × the factor.

    The sample size is the UNet's, or else the pipeline's ``default_sample_size`` (SD3: its
    transformer's; Flux: 128 latent pixels). ``default`` is returned for a backend with neither.
    """
    pipeline = getattr(backend, "pipeline", None)
    unet = getattr(pipeline, "unet", None)
    sample = getattr(getattr(unet, "config", None), "sample_size", None)
    if unet is None:
        sample = getattr(pipeline, "default_sample_size", None)
    if isinstance(sample, int):
        side = sample * backend.factor
        return side, side
    if isinstance(sample, list | tuple) and len(sample) == 2:
        return int(sample[1]) * backend.factor, int(sample[0]) * backend.factor
    return default


__all__ = [
    "DECODE_PIXELS",
    "device_timestep",
    "LatentBackend",
    "guided",
    "Backend",
    "attention_processors",
    "native_size",
    "select_device",
    "select_dtype",
    "use_sdpa",
]
